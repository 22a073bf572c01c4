#![no_main]
//! See `oms_fuzz_targets::money_quantity`: the same function the corpus replay test calls.

libfuzzer_sys::fuzz_target!(|data: &[u8]| oms_fuzz_targets::money_quantity(data));
