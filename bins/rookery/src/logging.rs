//! Log output for `rookery serve` and `rookery cm`: tracing events to stderr, as text (coloured
//! only on a terminal) or as one JSON object per line (`--log-format json`) for collectors.
//! Runs once, before the server or connection manager starts.

use clap::ValueEnum;
use std::io::IsTerminal;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal and NO_COLOR is unset.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level.
    Json,
}

/// Installs the global subscriber. `level` applies to Rookery's own crates; `ROOKERY_LOG` (an
/// `EnvFilter` directive string) replaces the whole filter when set.
pub fn init(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOKERY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("rookery={level},rookery_core={level},rookery_net={level},rookery_transport={level},rookery_mods={level},rookery_store={level},rookery_cm={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already installed, which keeps that one.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(colour(std::env::var_os("NO_COLOR")))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}

/// Colour only for a person at a terminal: journald, files and pipes get plain text, and a
/// non-empty NO_COLOR (https://no-color.org) turns it off everywhere.
fn colour(no_color: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn no_color_turns_colour_off_even_on_a_terminal() {
        assert!(!colour(Some("1".into())));
        assert!(!colour(Some("0".into())));
        // An empty NO_COLOR does not count (no-color.org); the terminal check decides then,
        // and under the test harness stderr is the same for both calls.
        assert_eq!(colour(Some("".into())), colour(None));
    }
}
