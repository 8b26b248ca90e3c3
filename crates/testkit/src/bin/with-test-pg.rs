//! `with-test-pg COMMAND [ARGS...]`: starts one private PostgreSQL cluster (see
//! `tollgate_testkit::pg`), runs the command with `TOLLGATE_TEST_PG` naming it, stops the
//! cluster and exits with the command's status. `scripts/test` runs `cargo test` under it, so
//! every test binary of a run shares one cluster. With `TOLLGATE_TEST_PG` already set, the
//! command runs against that server and no cluster is started.

use std::process::{Command, ExitCode};

use tollgate_testkit::pg::{Cluster, SERVER_ENV};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: with-test-pg COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let mut cmd = Command::new(&program);
    cmd.args(args);
    let _cluster = if std::env::var_os(SERVER_ENV).is_some_and(|v| !v.is_empty()) {
        None
    } else {
        match Cluster::start() {
            Ok(c) => {
                eprintln!(
                    "with-test-pg: PostgreSQL at {} ({})",
                    c.url,
                    c.dir.display()
                );
                cmd.env(SERVER_ENV, &c.url);
                Some(c)
            }
            Err(e) => {
                eprintln!("with-test-pg: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!("with-test-pg: running {}: {e}", program.to_string_lossy());
            ExitCode::from(2)
        }
    }
}
