//! The `oms` binary: parses arguments and dispatches. Everything else lives
//! in `oms-cli` (commands, output) and `oms-core` (data and rules).

/// jemalloc instead of the system allocator: for `oms serve` holding
/// thousands of idle connections it keeps about half the memory resident
/// (its size classes carry no headers inside a block, so the untouched
/// part of hyper's 8 KiB buffers is never paged in), and it hands memory
/// back after a burst of load; glibc's arenas keep it. SQLite's own caches
/// still come from the system allocator. Measured in docs/performance.md.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    oms_cli::main()
}
