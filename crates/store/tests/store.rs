//! The store's object semantics, against real SQLite files in temporary directories.

mod common;

use common::{next, object, open, open_with, owned, rv};
use serde_json::json;
use wisp_store::{EventType, Preconditions, SqliteOptions, Store, StoreError};

const CM: &str = "configmaps";
const SVC: &str = "services.serving.knative.dev";

#[tokio::test]
async fn resource_versions_increase_across_all_resources() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.current_revision().await.unwrap(), 0);
    let mut seen = Vec::new();
    for i in 0..5 {
        seen.push(rv(&store
            .create(CM, object("a", &format!("cm{i}")))
            .await
            .unwrap()));
        seen.push(rv(&store
            .create(SVC, object("b", &format!("svc{i}")))
            .await
            .unwrap()));
        seen.push(rv(&store
            .create("namespaces", object("", &format!("ns{i}")))
            .await
            .unwrap()));
    }
    let mut updated = store.get(CM, "a", "cm0").await.unwrap();
    updated["data"]["key"] = json!("changed");
    seen.push(rv(&store.update(CM, updated).await.unwrap()));
    seen.push(rv(&store
        .delete(SVC, "b", "svc0", Preconditions::default())
        .await
        .unwrap()));
    assert_eq!(
        seen,
        (1..=17).collect::<Vec<u64>>(),
        "one rv per written object, no gaps"
    );
    assert_eq!(store.current_revision().await.unwrap(), 17);
    assert_eq!(store.list(CM, None).await.unwrap().resource_version, 17);
}

#[tokio::test]
async fn create_stamps_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut input = object("default", "hello");
    input["metadata"]["resourceVersion"] = json!("999");
    input["metadata"]["uid"] = json!("forged");
    let created = store.create(CM, input).await.unwrap();
    let meta = &created["metadata"];
    let uid = meta["uid"].as_str().unwrap();
    assert_ne!(uid, "forged");
    assert_eq!(uuid::Uuid::parse_str(uid).unwrap().get_version_num(), 4);
    let ts = meta["creationTimestamp"].as_str().unwrap();
    humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
    assert!(
        ts.ends_with('Z') && !ts.contains('.'),
        "RFC 3339 seconds: {ts}"
    );
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["resourceVersion"], "1");
    assert_eq!(meta["namespace"], "default");
    assert_eq!(store.get(CM, "default", "hello").await.unwrap(), created);

    let err = store
        .create(CM, object("default", "hello"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    assert_eq!(err.to_string(), "configmaps \"hello\" already exists");
    // Same name in another namespace or resource is another object.
    store.create(CM, object("other", "hello")).await.unwrap();
    store.create(SVC, object("default", "hello")).await.unwrap();

    let err = store
        .create(CM, json!({"metadata": {"namespace": "default"}}))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = store.create(CM, json!("not an object")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = store.get(CM, "default", "missing").await.unwrap_err();
    assert_eq!(err.to_string(), "configmaps \"missing\" not found");
}

#[tokio::test]
async fn generate_name_appends_five_characters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let created = store
            .create(
                CM,
                json!({"metadata": {"generateName": "job-", "namespace": "default"}}),
            )
            .await
            .unwrap();
        let name = created["metadata"]["name"].as_str().unwrap().to_owned();
        assert_eq!(name.len(), "job-".len() + 5, "{name}");
        assert!(name.starts_with("job-"));
        assert!(
            name[4..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{name}"
        );
        store.get(CM, "default", &name).await.unwrap();
        names.insert(name);
    }
    assert_eq!(names.len(), 50);
}

#[tokio::test]
async fn generation_bumps_only_on_spec_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let created = store.create(CM, object("default", "a")).await.unwrap();

    let mut labels = created.clone();
    labels["metadata"]["labels"] = json!({"app": "x"});
    let after_labels = store.update(CM, labels).await.unwrap();
    assert_eq!(
        after_labels["metadata"]["generation"], 1,
        "metadata change keeps generation"
    );
    assert!(rv(&after_labels) > rv(&created));

    let mut status = after_labels.clone();
    status["status"] = json!({"observedGeneration": 1});
    let after_status = store.update_status(CM, status).await.unwrap();
    assert_eq!(
        after_status["metadata"]["generation"], 1,
        "status change keeps generation"
    );
    assert!(rv(&after_status) > rv(&after_labels));

    let mut spec = after_status.clone();
    spec["data"]["key"] = json!("new");
    let after_spec = store.update(CM, spec).await.unwrap();
    assert_eq!(after_spec["metadata"]["generation"], 2);
    assert_eq!(
        after_spec["status"],
        json!({"observedGeneration": 1}),
        "update keeps status"
    );

    let mut added = after_spec.clone();
    added["extra"] = json!({"field": true});
    assert_eq!(
        store.update(CM, added).await.unwrap()["metadata"]["generation"],
        3
    );

    // Status in an update is ignored; generation and uid from the client are ignored.
    let mut sneaky = store.get(CM, "default", "a").await.unwrap();
    sneaky["status"] = json!({"observedGeneration": 42});
    sneaky["metadata"]["generation"] = json!(100);
    sneaky["metadata"]["uid"] = json!("forged");
    let unchanged = store.update(CM, sneaky).await.unwrap();
    assert_eq!(unchanged, store.get(CM, "default", "a").await.unwrap());
    assert_eq!(unchanged["metadata"]["generation"], 3);
    assert_eq!(unchanged["status"], json!({"observedGeneration": 1}));
    assert_eq!(unchanged["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        unchanged["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
}

#[tokio::test]
async fn stale_resource_version_conflicts_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let v1 = store.create(CM, object("default", "a")).await.unwrap();
    let mut v2 = v1.clone();
    v2["data"]["key"] = json!("two");
    let v2 = store.update(CM, v2).await.unwrap();
    let before = store.current_revision().await.unwrap();

    let mut stale = v1.clone();
    stale["data"]["key"] = json!("lost update");
    let err = store.update(CM, stale.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let mut stale_status = v1.clone();
    stale_status["status"] = json!({"x": 1});
    let err = store.update_status(CM, stale_status).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(store.get(CM, "default", "a").await.unwrap(), v2);
    assert_eq!(store.current_revision().await.unwrap(), before);

    // Without a resourceVersion an update is unconditional.
    stale["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let forced = store.update(CM, stale).await.unwrap();
    assert_eq!(forced["data"]["key"], "lost update");

    let err = store
        .update(CM, object("default", "missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn no_op_update_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let created = store.create(CM, object("default", "a")).await.unwrap();
    let mut rx = store.watch(None, None, rv(&created)).await.unwrap();

    // The same object, with fields in another order and without resourceVersion.
    let same = json!({"data": {"key": "value"}, "metadata": {"namespace": "default", "name": "a"}, "kind": "ConfigMap", "apiVersion": "v1"});
    assert_eq!(store.update(CM, same).await.unwrap(), created);
    assert_eq!(store.update(CM, created.clone()).await.unwrap(), created);
    assert_eq!(
        store.update_status(CM, created.clone()).await.unwrap(),
        created
    );
    assert_eq!(store.current_revision().await.unwrap(), rv(&created));

    // The next event is the next real write: the no-ops logged nothing.
    let sentinel = store.create(CM, object("default", "b")).await.unwrap();
    let event = next(&mut rx).await;
    assert_eq!(event.resource_version, rv(&sentinel));
    assert_eq!(event.resource_version, rv(&created) + 1);
}

#[tokio::test]
async fn update_status_touches_only_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let created = store.create(CM, object("default", "a")).await.unwrap();
    let mut incoming = created.clone();
    incoming["data"]["key"] = json!("ignored");
    incoming["metadata"]["labels"] = json!({"ignored": "yes"});
    incoming["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    let updated = store.update_status(CM, incoming).await.unwrap();
    let mut expected = created.clone();
    expected["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    expected["metadata"]["resourceVersion"] = json!((rv(&created) + 1).to_string());
    assert_eq!(updated, expected);
    assert_eq!(store.get(CM, "default", "a").await.unwrap(), expected);
}

#[tokio::test]
async fn cascading_delete_three_levels_in_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let svc = store.create(SVC, object("default", "svc")).await.unwrap();
    let config = store
        .create("configurations", owned("default", "config", &[&svc]))
        .await
        .unwrap();
    let route = store
        .create("routes", owned("default", "route", &[&svc]))
        .await
        .unwrap();
    let rev1 = store
        .create("revisions", owned("default", "rev-1", &[&config]))
        .await
        .unwrap();
    let rev2 = store
        .create("revisions", owned("default", "rev-2", &[&config]))
        .await
        .unwrap();
    // Owned by the route and by an unrelated object that survives: kept.
    let other = store.create(CM, object("default", "other")).await.unwrap();
    let shared = store
        .create(CM, owned("default", "shared", &[&route, &other]))
        .await
        .unwrap();
    let unrelated = store
        .create(CM, object("default", "unrelated"))
        .await
        .unwrap();
    let before = store.current_revision().await.unwrap();
    let mut rx = store.watch(None, None, before).await.unwrap();

    let deleted = store
        .delete(SVC, "default", "svc", Preconditions::default())
        .await
        .unwrap();
    assert_eq!(deleted["metadata"]["uid"], svc["metadata"]["uid"]);
    assert_eq!(
        rv(&deleted),
        before + 1,
        "the deleted object carries the deletion rv"
    );
    // One commit: by the time delete returns, every dependent is gone.
    for (resource, name) in [
        (SVC, "svc"),
        ("configurations", "config"),
        ("routes", "route"),
        ("revisions", "rev-1"),
        ("revisions", "rev-2"),
    ] {
        let err = store.get(resource, "default", name).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { .. }),
            "{resource}/{name}: {err}"
        );
    }
    assert_eq!(store.get(CM, "default", "shared").await.unwrap(), shared);
    assert_eq!(
        store.get(CM, "default", "unrelated").await.unwrap(),
        unrelated
    );
    assert_eq!(store.current_revision().await.unwrap(), before + 5);

    let mut events = Vec::new();
    for _ in 0..5 {
        let e = next(&mut rx).await;
        assert_eq!(e.event_type, EventType::Deleted);
        assert_eq!(rv(&e.object), e.resource_version);
        events.push((
            e.resource,
            e.object["metadata"]["name"].as_str().unwrap().to_owned(),
            e.resource_version,
        ));
    }
    let rvs: Vec<u64> = events.iter().map(|e| e.2).collect();
    assert_eq!(rvs, (before + 1..=before + 5).collect::<Vec<_>>());
    assert_eq!(events[0].1, "svc", "the owner goes first");
    let pos = |n: &str| events.iter().position(|e| e.1 == n).unwrap();
    assert!(
        pos("config") < pos("rev-1") && pos("config") < pos("rev-2"),
        "{events:?}"
    );
    let _ = (rev1, rev2);

    // The surviving co-owner's delete now collects `shared`.
    store
        .delete(CM, "default", "other", Preconditions::default())
        .await
        .unwrap();
    assert!(matches!(
        store.get(CM, "default", "shared").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn finalizers_hold_a_delete_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let owner = store.create(SVC, object("default", "svc")).await.unwrap();
    let mut obj = owned("default", "held", &[&owner]);
    obj["metadata"]["finalizers"] = json!(["wisp.dev/cleanup"]);
    store.create(CM, obj).await.unwrap();
    let child = store
        .create(
            CM,
            owned(
                "default",
                "child",
                &[&store.get(CM, "default", "held").await.unwrap()],
            ),
        )
        .await
        .unwrap();
    let start = store.current_revision().await.unwrap();
    let mut rx = store.watch(Some(CM), None, start).await.unwrap();

    // The owner's delete cascades to `held`, which only gets marked; its child waits.
    store
        .delete(SVC, "default", "svc", Preconditions::default())
        .await
        .unwrap();
    let marked = store.get(CM, "default", "held").await.unwrap();
    let ts = marked["metadata"]["deletionTimestamp"].as_str().unwrap();
    humantime::parse_rfc3339(ts).unwrap();
    let e = next(&mut rx).await;
    assert_eq!(
        (e.event_type, e.resource_version),
        (EventType::Modified, rv(&marked))
    );
    assert_eq!(store.get(CM, "default", "child").await.unwrap(), child);

    // A second delete changes nothing.
    let again = store
        .delete(CM, "default", "held", Preconditions::default())
        .await
        .unwrap();
    assert_eq!(again, marked);
    // No new finalizers while deleting.
    let mut more = marked.clone();
    more["metadata"]["finalizers"] = json!(["wisp.dev/cleanup", "another"]);
    assert!(matches!(
        store.update(CM, more).await,
        Err(StoreError::Invalid(_))
    ));
    // Other updates still work, and keep deletionTimestamp.
    let mut labelled = marked.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    labelled["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("deletionTimestamp");
    let labelled = store.update(CM, labelled).await.unwrap();
    assert_eq!(labelled["metadata"]["deletionTimestamp"], ts);
    assert_eq!(next(&mut rx).await.event_type, EventType::Modified);

    // Removing the last finalizer deletes it, and cascades to its child.
    let mut released = labelled.clone();
    released["metadata"]["finalizers"] = json!([]);
    let gone = store.update(CM, released).await.unwrap();
    assert_eq!(rv(&gone), rv(&labelled) + 1);
    assert!(matches!(
        store.get(CM, "default", "held").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get(CM, "default", "child").await,
        Err(StoreError::NotFound { .. })
    ));
    let e = next(&mut rx).await;
    assert_eq!(
        (e.event_type, e.resource_version),
        (EventType::Deleted, rv(&gone))
    );
    assert_eq!(e.object["metadata"]["finalizers"], json!([]));
    let e = next(&mut rx).await;
    assert_eq!(
        (e.event_type, e.object["metadata"]["name"].as_str()),
        (EventType::Deleted, Some("child"))
    );
}

#[tokio::test]
async fn delete_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let created = store.create(CM, object("default", "a")).await.unwrap();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_owned();
    let wrong_uid = Preconditions {
        uid: Some("nope".into()),
        resource_version: None,
    };
    let err = store
        .delete(CM, "default", "a", wrong_uid)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let wrong_rv = Preconditions {
        uid: None,
        resource_version: Some(rv(&created) + 10),
    };
    let err = store
        .delete(CM, "default", "a", wrong_rv)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(store.get(CM, "default", "a").await.unwrap(), created);
    let right = Preconditions {
        uid: Some(uid),
        resource_version: Some(rv(&created)),
    };
    store.delete(CM, "default", "a", right).await.unwrap();
    let err = store
        .delete(CM, "default", "a", Preconditions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn orphans_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let owner = store.create(SVC, object("default", "svc")).await.unwrap();
    store
        .delete(SVC, "default", "svc", Preconditions::default())
        .await
        .unwrap();
    // A controller creating a child of the owner it saw before the delete.
    let created = store
        .create(CM, owned("default", "late-child", &[&owner]))
        .await
        .unwrap();
    assert_eq!(created["metadata"]["name"], "late-child");
    assert!(matches!(
        store.get(CM, "default", "late-child").await,
        Err(StoreError::NotFound { .. })
    ));

    // Switched off, such objects stay.
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        collect_orphans: false,
        ..SqliteOptions::default()
    };
    let store = open_with(dir.path(), opts);
    store
        .create(CM, owned("default", "kept", &[&owner]))
        .await
        .unwrap();
    store.get(CM, "default", "kept").await.unwrap();
}

#[tokio::test]
async fn list_is_ordered_and_continues_into_watch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (ns, name) in [("b", "y"), ("a", "z"), ("b", "x"), ("a", "a")] {
        store.create(CM, object(ns, name)).await.unwrap();
    }
    store
        .create(SVC, object("a", "other-resource"))
        .await
        .unwrap();
    let all = store.list(CM, None).await.unwrap();
    let keys: Vec<(String, String)> = all
        .items
        .iter()
        .map(|o| {
            (
                o["metadata"]["namespace"].as_str().unwrap().into(),
                o["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [("a", "a"), ("a", "z"), ("b", "x"), ("b", "y")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(all.resource_version, 5);
    let in_b = store.list(CM, Some("b")).await.unwrap();
    assert_eq!(
        in_b.items.iter().map(common::name).collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert!(store.list(CM, Some("none")).await.unwrap().items.is_empty());

    let mut rx = store
        .watch(Some(CM), None, all.resource_version)
        .await
        .unwrap();
    let created = store.create(CM, object("c", "new")).await.unwrap();
    let e = next(&mut rx).await;
    assert_eq!(
        (e.event_type, e.resource_version),
        (EventType::Added, rv(&created))
    );
    assert_eq!(e.object, created);
    assert_eq!(e.resource, CM);
}

#[tokio::test]
async fn reopen_keeps_everything_and_continues_the_resource_version() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, last) = {
        let store = open(dir.path());
        let a = store.create(CM, object("default", "a")).await.unwrap();
        let mut b = store.create(CM, object("default", "b")).await.unwrap();
        b["data"]["key"] = json!("changed");
        store.update(CM, b).await.unwrap();
        store
            .delete(CM, "default", "a", Preconditions::default())
            .await
            .unwrap();
        let _ = a;
        (
            store.list(CM, None).await.unwrap().items,
            store.current_revision().await.unwrap(),
        )
    };
    assert_eq!(last, 4);
    let store = open(dir.path());
    assert_eq!(store.current_revision().await.unwrap(), last);
    assert_eq!(store.list(CM, None).await.unwrap().items, kept);
    let c = store.create(CM, object("default", "c")).await.unwrap();
    assert_eq!(rv(&c), last + 1);
    // The whole history is still there to watch.
    let mut rx = store.watch(None, None, 0).await.unwrap();
    let types: Vec<EventType> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(next(&mut rx).await.event_type);
        }
        v
    };
    use EventType::*;
    assert_eq!(types, [Added, Added, Modified, Deleted, Added]);
}

#[tokio::test]
async fn open_in_creates_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let store = wisp_store::SqliteStore::open_in(&data).unwrap();
    store.create(CM, object("default", "a")).await.unwrap();
    assert_eq!(store.path(), data.join(wisp_store::FILE_NAME));
    assert!(data.join("wisp.db").exists());
}
