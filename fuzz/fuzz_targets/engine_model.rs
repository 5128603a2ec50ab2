#![no_main]
//! See `ttlcask_engine::fuzzing::engine_model`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ttlcask_engine::fuzzing::engine_model(data));
