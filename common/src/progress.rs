//! Progress bars for the one-shot commands an operator watches on a terminal
//! (`gapsync-sender once` building snapshots, `gapsync-receiver apply` and `import`),
//! drawn with indicatif on standard error. Where standard error is not a terminal (a
//! service under systemd, a pipe, a test) a bar draws nothing: the log lines say the
//! same (a snapshot logs its progress every few seconds).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether standard error is a terminal (then the one-shot commands draw bars).
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `len` `unit`s named `name`; hidden unless standard error is a terminal.
pub fn bar(name: &str, len: u64, unit: &str) -> ProgressBar {
    if !on_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    // The template is a constant; should it not parse, the default style is as good.
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{{prefix}} [{{bar:24}}] {{pos}}/{{len}} {unit} {{percent}}% ({{eta}} left)"
    )) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(name.to_owned());
    pb
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// Off a terminal (as under the test harness) a bar is hidden and counts anyway.
    #[test]
    fn a_bar_off_a_terminal_draws_nothing() {
        let pb = super::bar("t", 10, "rows");
        if !super::on_terminal() {
            assert!(pb.is_hidden());
        }
        pb.inc(3);
        assert_eq!(pb.position(), 3);
    }
}
