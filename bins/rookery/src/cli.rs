//! Command-line interface definition (clap derive).

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "rookery", version, about = "Rookery XMPP server")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (zero-config: domain localhost on 127.0.0.1:5222/5223, data in ./rookery-data).
    Serve(ServeArgs),
    /// Validate the configuration and exit.
    CheckConfig(ConfigArg),
    /// Manage accounts (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(ClapArgs, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file (TOML). Without it, the zero-config defaults apply.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(ClapArgs, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Once every listener is bound, write their addresses here as `kind address` lines
    /// (for scripts and tests that bind port 0).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password comes from --password, a prompt, or stdin.
    Add {
        jid: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Delete an account and all its data.
    Del {
        jid: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Set a new password.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List accounts, optionally of one domain.
    List {
        domain: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}
