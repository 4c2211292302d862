//! `nats-conf/accounts.conf` holds the permissions each role's list of
//! uses derives (`fleetbus_wire::roles`), between two marker lines. The
//! server reads the file, so it is checked in; this test keeps it equal to
//! the code. After changing what a role reads or writes, rewrite it with
//! `FLEETBUS_WRITE_ACCOUNTS=1 cargo test -p fleetbus-wire --test accounts_conf`.

use fleetbus_wire::roles::permissions_conf;

const BEGIN: &str = "# >>> generated from wire/src/roles.rs (what each role reads and writes): do not edit by hand\n";
const END: &str = "# <<< end of generated permissions\n";

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats-conf/accounts.conf")
}

#[test]
fn the_permissions_of_the_cluster_are_what_the_roles_use() {
    let text = std::fs::read_to_string(path()).expect("read nats-conf/accounts.conf");
    let start = text.find(BEGIN).expect("the BEGIN marker") + BEGIN.len();
    let end = text.find(END).expect("the END marker");
    let want = permissions_conf();
    if text[start..end] != want {
        if std::env::var_os("FLEETBUS_WRITE_ACCOUNTS").is_some() {
            let new = format!("{}{want}{}", &text[..start], &text[end..]);
            std::fs::write(path(), new).expect("write nats-conf/accounts.conf");
            return;
        }
        panic!(
            "nats-conf/accounts.conf does not hold the permissions wire/src/roles.rs derives; \
             rewrite it with FLEETBUS_WRITE_ACCOUNTS=1 cargo test -p fleetbus-wire --test \
             accounts_conf. Expected:\n{want}"
        );
    }
}
