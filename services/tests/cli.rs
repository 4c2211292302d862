//! Every program in the same shape: each takes `--config` and prints its
//! effective configuration with `--print-config` (a file `--config` loads
//! again, the `[nats]` table included, its password hidden), and each ends
//! with the exit code of one table (`fleetbus_services::exit`): 64 for a
//! wrong command line, 78 for a wrong configuration, 2 for a cluster that
//! cannot be reached.

mod common;

use std::process::Output;

use common::assert_config_refused;
use fleetbus_e2e::text;

/// Every program that connects to the cluster, with the arguments it needs
/// besides the common ones.
const PROGRAMS: &[&[&str]] = &[
    &["gateway"],
    &["hamster"],
    &["monkey"],
    &["janitor"],
    &["provision", "--wait", "0"],
    &["status"],
    &["verify", "--report", "none.jsonl"],
    &["dead", "ls"],
    &["dead", "replay", "--all"],
    &["dead", "rescue"],
    &["device", "ls"],
    &["device", "pending"],
];

/// `fleetbus <args> <extra>`, nothing from the environment.
fn run(args: &[&str], extra: &[&str]) -> Output {
    common::fleetbus_alone(&[args, extra].concat())
}

#[test]
fn every_program_prints_its_configuration_with_the_nats_table_of_the_file() {
    let (dir, path) = common::config_file(
        "[nats]\nurls = [\"nats://10.0.0.1:4222\", \"nats://10.0.0.2:4222\"]\nuser = \"ops\"\npassword = \"secret\"\n",
    );
    let config = path.to_str().unwrap();
    for program in PROGRAMS.iter().chain([&["simulate"][..]].iter()) {
        let out = run(program, &["--config", config, "--print-config"]);
        assert_eq!(out.status.code(), Some(0), "{program:?}: {}", text(&out));
        let printed = String::from_utf8_lossy(&out.stdout);
        let table: toml::Table = printed
            .parse()
            .unwrap_or_else(|e| panic!("{program:?} printed no TOML: {e}\n{printed}"));
        assert!(
            !printed.contains("secret"),
            "{program:?} shows the password"
        );
        if program[0] == "simulate" {
            assert!(table.contains_key("simulate"), "{program:?}: {printed}");
            continue;
        }
        let nats = &table["nats"];
        assert_eq!(
            nats["urls"].as_array().unwrap().len(),
            2,
            "{program:?} reads [nats] from the file: {printed}"
        );
        assert_eq!(nats["user"].as_str(), Some("ops"), "{program:?}");
        // The printed file loads again, to the same configuration.
        let again = dir.path().join("again.toml");
        std::fs::write(&again, printed.as_bytes()).unwrap();
        let out2 = run(
            program,
            &["--config", again.to_str().unwrap(), "--print-config"],
        );
        assert_eq!(out2.status.code(), Some(0), "{program:?}: {}", text(&out2));
        let table2: toml::Table = String::from_utf8_lossy(&out2.stdout).parse().unwrap();
        let mut without_password = table.clone();
        let mut without_password2 = table2.clone();
        for t in [&mut without_password, &mut without_password2] {
            t["nats"].as_table_mut().unwrap().remove("password");
        }
        assert_eq!(without_password, without_password2, "{program:?}");
    }
}

#[test]
fn a_wrong_configuration_exits_78_and_a_wrong_command_line_64() {
    for program in PROGRAMS {
        assert_config_refused(program, "[nats]\nurl = \"nats://typo:4222\"\n", &["url"]);
        let out = run(program, &["--no-such-flag"]);
        assert_eq!(out.status.code(), Some(64), "{program:?}: {}", text(&out));
    }
    assert_config_refused(
        &["simulate"],
        "[simulate]\ndevices = 0\nprotocols = [\"suntech\"]\n",
        &["--devices must be > 0", "cannot speak suntech"],
    );
    assert_config_refused(
        &["hamster"],
        "[hamster]\npoison_after = 5\ngive_up_after = 5\n[hamster.pull]\nbatch = 0\n",
        &["pull.batch must be at least 1", "give_up_after (5) larger"],
    );
    let out = run(&["dead", "replay"], &[]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "no letters selected: {}",
        text(&out)
    );
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_cluster_that_cannot_be_reached_exits_2() {
    let nobody = "nats://admin:admin@127.0.0.1:1";
    for program in PROGRAMS {
        if program[0] == "gateway" {
            continue; // it binds device ports first; judged in gateway_cli
        }
        let out = run(program, &["--nats-url", nobody, "--nats-connect-wait", "0"]);
        assert_eq!(out.status.code(), Some(2), "{program:?}: {}", text(&out));
    }
}
