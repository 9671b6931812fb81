//! The `tongtian` binary: parses arguments and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tongtian_cli::Cli::parse();
    tongtian_cli::init_logging(&cli);
    let json = cli.json;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot start the async runtime");
            tongtian_cli::util::report_error(json, &e);
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(tongtian_cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tongtian_cli::util::report_error(json, &e);
            std::process::ExitCode::FAILURE
        }
    }
}
