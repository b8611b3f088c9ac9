//! What the command prints: results on standard output (a closed pipe ends
//! the output quietly, never the command's own status), and failures with
//! their exit codes, as text or, with `--json`, as one JSON object.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once standard output's reader has gone (`prov audit export | head -1`).
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to standard output; a closed pipe stops the output, quietly.
pub(crate) fn write_out(text: &str) -> std::io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// `println!` that never panics on a closed pipe.
macro_rules! outln {
    () => { $crate::output::say(String::from("\n")) };
    ($($arg:tt)*) => { $crate::output::say(format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that never panics on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::say(format!($($arg)*)) };
}

pub(crate) use {out, outln};

/// Prints, ignoring what cannot be printed (the reader is gone, or the
/// terminal closed: the command still ends with its own status).
pub(crate) fn say(text: String) {
    let _ = write_out(&text);
}

/// The exit codes, by what went wrong (the `--help` text lists them).
pub(crate) mod code {
    pub(crate) const FAILED: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const BLOCKED: u8 = 3;
    pub(crate) const STALE: u8 = 4;
    pub(crate) const UNREACHABLE: u8 = 5;
    pub(crate) const AUDIT: u8 = 6;
    pub(crate) const TAMPERED: u8 = 7;
    pub(crate) const UNCONFIRMED: u8 = 8;
    pub(crate) const BUSY: u8 = 9;
    pub(crate) const HELD: u8 = 10;
    pub(crate) const NOT_FOUND: u8 = 11;
    pub(crate) const UNAUTHENTICATED: u8 = 12;
    pub(crate) const REFUSED: u8 = 13;
    pub(crate) const INVALID: u8 = 14;
}

/// A failure: its exit code, what kind it is, the message, and where in
/// which file, when a file is to blame.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Fail {
    #[serde(rename = "exit_code")]
    pub(crate) code: u8,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) field: Option<String>,
}

impl Fail {
    /// A failure with exit code `code`, its kind named after the code.
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        let kind = match code {
            code::FAILED => "failed",
            code::USAGE => "usage",
            code::BLOCKED => "blocked",
            code::STALE => "stale",
            code::UNREACHABLE => "unreachable",
            code::AUDIT => "audit",
            code::TAMPERED => "tampered",
            code::UNCONFIRMED => "unconfirmed",
            code::BUSY => "busy",
            code::HELD => "held",
            code::NOT_FOUND => "not_found",
            code::UNAUTHENTICATED => "unauthenticated",
            code::REFUSED => "refused",
            code::INVALID => "invalid",
            130 | 143 => "stopped",
            _ => "error",
        };
        Fail {
            code,
            kind,
            message: message.into(),
            file: None,
            line: None,
            field: None,
        }
    }

    /// Names the kind (`config`, `policy`, `source`) where the code is shared.
    pub(crate) fn kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    /// Names the file to blame.
    pub(crate) fn file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Names the line of the file.
    pub(crate) fn line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// Names the field.
    pub(crate) fn field(mut self, field: Option<String>) -> Self {
        self.field = field;
        self
    }

    /// Reports the failure on standard error: `prov: MESSAGE`, or with
    /// `json` one JSON object (`exit_code`, `kind`, `message`, `file`,
    /// `line`, `field`) on one line. A status without a message (`plan
    /// --detailed-exitcode` with changes pending) prints nothing.
    pub(crate) fn report(&self, json: bool) {
        if self.message.is_empty() {
            return;
        }
        let text = if json {
            serde_json::to_string(self).unwrap_or_else(|_| {
                format!("{{\"exit_code\":{},\"kind\":\"{}\"}}", self.code, self.kind)
            })
        } else {
            format!("prov: {}", self.message)
        };
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}
