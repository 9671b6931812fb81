//! The `tongtian` binary: parses arguments and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match tongtian_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return bad_arguments(e),
    };
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

/// A command line clap refuses: under `--json`, the usual
/// `{"error": {"code", "message"}}` on stdout (`unknown_command` for an
/// unknown command or proposal kind, `bad_value` for a value outside the
/// allowed ones, `bad_args` otherwise) and exit status 2; else clap's own
/// text. Help and version print as usual.
fn bad_arguments(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args().any(|a| a == "--json");
    if !json
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        e.exit();
    }
    let code = match e.kind() {
        ErrorKind::InvalidSubcommand => "unknown_command",
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => "bad_value",
        _ => "bad_args",
    };
    let text = e.to_string();
    let message = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ")
        .to_string();
    println!(
        "{}",
        serde_json::json!({ "error": { "code": code, "message": message } })
    );
    std::process::ExitCode::from(2)
}
