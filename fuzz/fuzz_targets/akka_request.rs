#![no_main]
//! See `ttlcask::fuzzing::request`: one Akka request against `ttlcask serve --dev`.

use libfuzzer_sys::fuzz_target;
use ttlcask::fuzzing::{request, Dialect};

fuzz_target!(|data: &[u8]| request(Dialect::Akka, data));
