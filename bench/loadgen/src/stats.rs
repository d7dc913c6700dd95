//! Percentiles and /proc readings (server CPU time and memory, our own CPU time).

/// Linux reports utime/stime in USER_HZ ticks, which is 100 on every architecture we run on.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn sample(pid: u32) -> ProcSample {
    let path = if pid == 0 {
        "/proc/self".to_string()
    } else {
        format!("/proc/{pid}")
    };
    let mut out = ProcSample::default();
    if let Ok(stat) = std::fs::read_to_string(format!("{path}/stat")) {
        // Fields after the command name (which may contain spaces) start at field 3.
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime is field 14, stime field 15 (1-based) => index 11 and 12 here.
            let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            out.cpu_s = (ut + st) / TICKS_PER_SEC;
        }
    }
    if let Ok(status) = std::fs::read_to_string(format!("{path}/status")) {
        for line in status.lines() {
            let kb = || {
                line.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                out.rss_kb = kb();
            } else if line.starts_with("VmHWM:") {
                out.hwm_kb = kb();
            }
        }
    }
    out
}

/// Percentile (0..=100) of sorted nanosecond samples, in milliseconds.
pub fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1e6
}

/// A number for JSON: finite values with 3 decimals, else null.
pub fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".to_string()
    }
}

/// A JSON string literal (escapes quotes, backslashes and control characters).
pub fn jstr(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
