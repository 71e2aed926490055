//! Man pages (clap_mangen) and shell completions (clap_complete) of a binary, written by
//! its hidden `docs --out DIR` command for the packages: `DIR/<bin>.1`,
//! `DIR/<bin>.bash`, `DIR/_<bin>` (zsh) and `DIR/<bin>.fish`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes the man page and the completions of `cmd` into `out` (created if missing);
/// returns the files written.
pub fn write_docs(mut cmd: clap::Command, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let name = cmd.get_name().to_owned();
    let mut written = Vec::new();
    let man = out.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(&man, buf)?;
    written.push(man);
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let path = out.join(file);
        let mut f = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut f);
        written.push(path);
    }
    Ok(written)
}
