//! Progress of long commands (waiting for a catch-up, import, export, and
//! the backup and reseal commands): a bar on standard error when it is a
//! terminal, nothing at all otherwise (scripts, pipes, `--json`).
//!
//! Owns: deciding whether to draw, and the look of bars and spinners.
//! Must not: write to standard output (that is the command's answer), or
//! show a value of any row.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress is drawn: standard error is a terminal and the
/// command was not asked for `--json`.
pub fn drawn(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A progress bar or spinner; every method is a no-op when not drawn.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `total` steps (`unit`: what a step is, e.g. "rows").
    pub fn bar(what: &str, total: u64, unit: &str, json: bool) -> Progress {
        let bar = Self::make(json, Some(total));
        let template = format!(
            "{{msg}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{percent}}%, {{eta}} left)"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Progress { bar }
    }

    /// A spinner for work without a known size.
    pub fn spinner(what: &str, json: bool) -> Progress {
        let bar = Self::make(json, None);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    fn make(json: bool, total: Option<u64>) -> ProgressBar {
        if !drawn(json) {
            return ProgressBar::hidden();
        }
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        bar
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    pub fn set(&self, position: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(position);
    }

    pub fn message(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    /// Removes the bar from the terminal.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }

    /// Leaves the bar with a last message.
    pub fn done(&self, what: &str) {
        self.bar.finish_with_message(what.to_string());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}
