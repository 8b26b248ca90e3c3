//! Throwaway PostgreSQL databases on the server every machine here runs (127.0.0.1:5432,
//! trust auth). A test that needs PostgreSQL fails, naming the server, when it is not there:
//! it never skips.

use postgres::{Client, NoTls};

/// The server the tests use; `TOLLGATE_TEST_PG` overrides it.
pub fn server_url() -> String {
    std::env::var("TOLLGATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database created for one test and dropped when this goes out of scope.
pub struct TempDb {
    name: String,
    /// Connection URL of the new database.
    pub url: String,
}

fn admin() -> Client {
    let url = format!("{}/postgres", server_url());
    Client::connect(&url, NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {url} is required by this test (set TOLLGATE_TEST_PG to move it): {e}"
        )
    })
}

impl TempDb {
    /// Creates an empty database with a unique name.
    pub fn create(tag: &str) -> TempDb {
        let name = format!(
            "tollgate_test_{tag}_{}_{}",
            std::process::id(),
            crate::rng::Rng::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64)
            )
            .next_u64()
                % 1_000_000_000
        );
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        TempDb {
            url: format!("{}/{name}", server_url()),
            name,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
