//! GT06 device models: a few clones give some messages another meaning, as
//! Traccar's per-device `model` setting does. The generic runner
//! (`conformance.rs`) decodes every capture with the model its test set;
//! this checks that the model really is what makes the difference.

use chrono::{TimeZone, Utc};
use fleetbus_codec::{gt06, ParseContext};

#[test]
fn model_captures_need_the_model() {
    // Without the model these decode as the common layout (documented limit).
    let received_at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let ctx = ParseContext::new("123456789012345", received_at);
    let lw_heartbeat = hex::decode("78780a13560604f0830ccf986f0d0a").unwrap();
    let plain = gt06::parse(&lw_heartbeat, &ctx).unwrap();
    assert!(plain[0].attributes().get("power").is_none());
    let lw = gt06::parse_with_model(&lw_heartbeat, &ctx, Some("LW4G-4B")).unwrap();
    assert_eq!(lw[0].attributes()["power"], 13.1);
    // The model travels in the parse context too (the gateway's header).
    let with_model = gt06::parse(
        &lw_heartbeat,
        &ctx.clone().with_model(Some("LW4G-4B".into())),
    )
    .unwrap();
    assert_eq!(with_model, lw);
}
