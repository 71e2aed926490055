//! Live database checks shared by the golden tests of several crates (included with
//! `#[path]`): PostgreSQL on 127.0.0.1:5432 (trust auth) and MariaDB on 127.0.0.1:3306
//! (root, no password), reached through the `psql` and `mariadb` clients. A missing
//! client or server fails the test in CI (`CI=true`) and skips it, with the reason
//! printed, elsewhere.

#![allow(clippy::unwrap_used, dead_code)]

/// Whether `cmd args` (a connection probe) succeeds; see the module docs.
pub fn live_server(what: &str, cmd: &str, args: &[&str]) -> bool {
    let ok = std::process::Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is not reachable with `{cmd}` but CI=true: deploy/ci-deps.sh should have started it"
        );
        eprintln!(
            "skipping: {what} is not reachable with `{cmd}` (README.md: database servers for the tests)"
        );
    }
    ok
}

/// Run `script` through `cmd args`; stdout, or a panic with stderr and the script.
pub fn run_client(cmd: &str, args: &[&str], script: &str) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} failed: {}\nscript:\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
