//! The `oms` binary: parses arguments and dispatches. Everything else lives
//! in `oms-cli` (commands, output) and `oms-core` (data and rules).

fn main() -> std::process::ExitCode {
    oms_cli::main()
}
