//! Golden-file comparison shared by the golden tests of several crates (included with
//! `#[path]`): bless with `GAPSYNC_BLESS=1`, otherwise name the first differing line.

use std::path::Path;

/// Whether `GAPSYNC_BLESS=1` asks to rewrite the golden files.
pub fn blessing() -> bool {
    std::env::var("GAPSYNC_BLESS").as_deref() == Ok("1")
}

/// Compares `text` with the golden file at `path` (or writes it when blessing).
/// `Some(message)` names the file and the first differing line.
pub fn check(path: &Path, text: &str) -> Option<String> {
    if blessing() {
        std::fs::create_dir_all(path.parent().expect("golden files live in a directory"))
            .expect("create the golden directory");
        std::fs::write(path, text).expect("write the golden file");
        return None;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want == text {
        return None;
    }
    let (n, (w, g)) = want
        .lines()
        .chain(std::iter::repeat("<end of file>"))
        .zip(text.lines().chain(std::iter::repeat("<end of output>")))
        .enumerate()
        .find(|(_, (w, g))| w != g)
        .expect("the texts differ, so a line does");
    Some(format!(
        "{}: first difference at line {}:\n  golden: {w}\n  now:    {g}",
        path.display(),
        n + 1
    ))
}
