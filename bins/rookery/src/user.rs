//! `rookery user …`: account administration on the configured storage, opened the way the
//! server opens it (`rookery_server::open_stores`: SQLite or PostgreSQL, by `[storage]`). Safe
//! while the server runs: SQLite in WAL mode takes concurrent writers from several processes,
//! and PostgreSQL is a server made for many clients.

use crate::cli::UserCommand;
use crate::serve::load_config;
use anyhow::{Context, bail};
use rookery_core::accounts;
use rookery_proto::sasl::DEFAULT_ITERATIONS;
use rookery_server::open_stores;
use std::io::{BufRead, IsTerminal};

pub async fn run(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            jid,
            password,
            config,
        } => {
            let cfg = load_config(&config)?;
            let bare = check_host(&cfg, &jid)?;
            let pw = password_from(password, "Password for the new account: ")?;
            let stores = open_stores(&cfg).await?;
            accounts::create(&stores, &bare, &pw, DEFAULT_ITERATIONS).await?;
            println!("created {bare}");
        }
        UserCommand::Del { jid, config } => {
            let cfg = load_config(&config)?;
            let bare = check_host(&cfg, &jid)?;
            let stores = open_stores(&cfg).await?;
            accounts::delete(&stores, &bare).await?;
            println!("deleted {bare}");
        }
        UserCommand::Passwd {
            jid,
            password,
            config,
        } => {
            let cfg = load_config(&config)?;
            let bare = check_host(&cfg, &jid)?;
            let pw = password_from(password, "New password: ")?;
            let stores = open_stores(&cfg).await?;
            accounts::set_password(&stores, &bare, &pw, DEFAULT_ITERATIONS).await?;
            println!("password changed for {bare}");
        }
        UserCommand::List { domain, config } => {
            let cfg = load_config(&config)?;
            let stores = open_stores(&cfg).await?;
            for (user, dom) in stores.accounts.list(domain.as_deref()).await? {
                println!("{user}@{dom}");
            }
        }
    }
    Ok(())
}

fn check_host(
    cfg: &rookery_config::Config,
    jid: &str,
) -> anyhow::Result<rookery_proto::stanza::BareJid> {
    let bare = accounts::parse_account(jid)?;
    if cfg.host(bare.domain().as_str()).is_none() {
        bail!("{} is not a host in this configuration", bare.domain());
    }
    Ok(bare)
}

/// The password from the flag, an interactive prompt, or the first line of stdin.
fn password_from(flag: Option<String>, prompt: &str) -> anyhow::Result<String> {
    let pw = match flag {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => {
            let a = rpassword::prompt_password(prompt).context("reading password")?;
            let b = rpassword::prompt_password("Again: ").context("reading password")?;
            if a != b {
                bail!("the passwords differ");
            }
            a
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}
