//! The child-process helper the end-to-end tests rely on.

use std::time::Duration;

use fleetbus_e2e::{wait_for, Proc, Spec};

#[tokio::test]
async fn kill_terminate_restart_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    // A process that logs, and exits 3 on SIGTERM (like a graceful service).
    let script = "echo started; trap 'echo stopping; exit 3' TERM; while true; do sleep 0.05; done";
    let mut p = Proc::start(
        Spec::new("worker", "/bin/sh").args(["-c", script]),
        dir.path(),
    )
    .unwrap();
    wait_for("started", Duration::from_secs(10), || {
        let log = p.log();
        async move { Ok(log.contains("started").then_some(())) }
    })
    .await
    .unwrap();
    assert!(p.is_running());

    let status = p.terminate(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(3), "SIGTERM handled by the process");
    assert!(p.log().contains("stopping"));

    p.restart().unwrap();
    assert_eq!(p.starts(), 2);
    assert!(p.is_running());
    wait_for("started again", Duration::from_secs(10), || {
        let starts = p.log().matches("started").count();
        async move { Ok((starts == 2).then_some(())) }
    })
    .await
    .unwrap();
    p.kill();
    assert!(!p.is_running());
    assert_eq!(
        p.exit_status().and_then(|s| s.code()),
        None,
        "killed by a signal"
    );
}

#[tokio::test]
async fn wait_for_reports_the_last_reason() {
    let err = wait_for::<(), _, _>("never", Duration::from_millis(300), || async {
        anyhow::bail!("the reason")
    })
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("the reason"), "{err:#}");
}
