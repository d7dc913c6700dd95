//! The `rookery` binary: command-line parsing, then either the server (`serve`), a config check,
//! admin commands on the same data, or a connection manager (`cm`). Everything here is glue; behaviour lives in the crates.

mod cli;
mod cm;
mod logging;
mod serve;
mod user;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rookery: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match args.command {
            cli::Command::Serve(a) => serve::run(a).await,
            cli::Command::CheckConfig(a) => serve::check_config(a),
            cli::Command::User(a) => user::run(a).await,
            cli::Command::Cm(a) => cm::run(a).await,
        }
    });
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rookery: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
