//! `rookery-testdns ADDR ZONEFILE`: serves ZONEFILE's records (format: see `TestDns::load_zone`)
//! over UDP and TCP on ADDR (`127.0.0.1:0` picks a free port) and prints the bound address as
//! the first line on stdout. Interop tests start it as a process, read that line, and point the
//! servers under test (Prosody, ejabberd, Rookery's `[s2s] nameserver`) at it. Runs until
//! interrupted or killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use rookery_testdns::TestDns;

const USAGE: &str = "usage: rookery-testdns ADDR ZONEFILE   (e.g. 127.0.0.1:0 zone.txt)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, zone_path] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("rookery-testdns: bad address {addr:?}: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let zone = match std::fs::read_to_string(zone_path) {
        Ok(zone) => zone,
        Err(e) => {
            eprintln!("rookery-testdns: cannot read {zone_path}: {e}");
            return ExitCode::from(2);
        }
    };
    let dns = match TestDns::start_on(addr).await {
        Ok(dns) => dns,
        Err(e) => {
            eprintln!("rookery-testdns: cannot bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = dns.load_zone(&zone) {
        eprintln!("rookery-testdns: {zone_path}: {e}");
        return ExitCode::from(2);
    }
    // The parent reads this line to learn the port; flush so it is not stuck in a buffer.
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", dns.addr())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // SIGTERM/SIGKILL end the process without this; Ctrl-C ends it cleanly.
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("rookery-testdns: waiting for Ctrl-C failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
