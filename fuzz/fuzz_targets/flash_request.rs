#![no_main]
//! See `ttlcask::fuzzing::request`: one Flash request against `ttlcask serve --dev`.

use libfuzzer_sys::fuzz_target;
use ttlcask::fuzzing::{request, Dialect};

fuzz_target!(|data: &[u8]| request(Dialect::Flash, data));
