//! The controller against a real SQLite store, in-process: objects go in through admission and
//! the store, as the API server would put them, and the tests wait for the controller to
//! converge (polling with a deadline; no timing is asserted).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use wisp_api::admission::{AdmissionContext, Operation, admit};
use wisp_api::kinds;
use wisp_controller::{Config, Controller};
use wisp_store::{SqliteStore, Store};

struct Env {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
    let controller = Controller::new(
        store.clone(),
        Config {
            domain: "example.com".into(),
            workers: 2,
        },
    );
    let task = tokio::spawn(controller.run());
    Env {
        store,
        _dir: dir,
        _task: task,
    }
}

fn service(name: &str, target: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{
            "command": ["python3", "-m", "http.server"],
            "env": [{"name": "TARGET", "value": target}],
        }]}}},
    })
}

fn admitted(op: Operation, old: Option<&Value>, obj: Value) -> Value {
    admit(
        &kinds::SERVICES,
        op,
        old,
        obj,
        &AdmissionContext::new("tester"),
    )
    .unwrap()
}

/// Polls `check` until it returns Some, or panics with `what` after 10 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(
    store: &Arc<dyn Store>,
    info: &wisp_api::kinds::ResourceInfo,
    name: &str,
) -> Option<Value> {
    store
        .get(&kinds::storage_key(info), "default", name)
        .await
        .ok()
}

fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_gets_configuration_route_and_revisions() {
    let env = start();
    let store = &env.store;
    store
        .create(
            "services.serving.knative.dev",
            admitted(Operation::Create, None, service("hello", "v1")),
        )
        .await
        .unwrap();

    let rev = eventually("revision hello-00001", async || {
        get(store, &kinds::REVISIONS, "hello-00001").await
    })
    .await;
    let labels = &rev["metadata"]["labels"];
    assert_eq!(labels["serving.knative.dev/service"], "hello");
    assert_eq!(labels["serving.knative.dev/configuration"], "hello");
    assert_eq!(labels["serving.knative.dev/configurationGeneration"], "1");
    assert_eq!(rev["spec"]["containers"][0]["env"][0]["value"], "v1");

    let svc = eventually("service status", async || {
        let s = get(store, &kinds::SERVICES, "hello").await?;
        let done = s.pointer("/status/latestCreatedRevisionName") == Some(&json!("hello-00001"))
            && s.pointer("/status/url").is_some();
        done.then_some(s)
    })
    .await;
    assert_eq!(svc["status"]["url"], "http://hello.default.example.com");
    assert_eq!(svc["status"]["observedGeneration"], 1);
    // No data plane: never Ready=True.
    assert_eq!(condition(&svc, "Ready").unwrap()["status"], "Unknown");
    let rev = eventually("revision conditions", async || {
        let r = get(store, &kinds::REVISIONS, "hello-00001").await?;
        condition(&r, "ResourcesAvailable").is_some().then_some(r)
    })
    .await;
    assert_eq!(condition(&rev, "Ready").unwrap()["status"], "Unknown");
    assert_eq!(
        condition(&rev, "ResourcesAvailable").unwrap()["reason"],
        "NoDataPlane"
    );

    // A template change is a new immutable revision; the old one is untouched.
    let cur = get(store, &kinds::SERVICES, "hello").await.unwrap();
    let mut next = cur.clone();
    next["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("v2");
    let next = admitted(Operation::Update, Some(&cur), next);
    store
        .update("services.serving.knative.dev", next)
        .await
        .unwrap();
    let rev2 = eventually("revision hello-00002", async || {
        get(store, &kinds::REVISIONS, "hello-00002").await
    })
    .await;
    assert_eq!(rev2["spec"]["containers"][0]["env"][0]["value"], "v2");
    assert_eq!(
        rev2["metadata"]["labels"]["serving.knative.dev/configurationGeneration"],
        "2"
    );
    let rev1 = get(store, &kinds::REVISIONS, "hello-00001").await.unwrap();
    assert_eq!(rev1["spec"]["containers"][0]["env"][0]["value"], "v1");

    // A label-only change of the Service does not make a revision.
    let cur = get(store, &kinds::SERVICES, "hello").await.unwrap();
    let mut next = cur.clone();
    next["metadata"]["labels"] = json!({"team": "a"});
    store
        .update(
            "services.serving.knative.dev",
            admitted(Operation::Update, Some(&cur), next),
        )
        .await
        .unwrap();
    eventually("label on configuration", async || {
        let c = get(store, &kinds::CONFIGURATIONS, "hello").await?;
        (c["metadata"]["labels"]["team"] == "a").then_some(())
    })
    .await;
    assert!(get(store, &kinds::REVISIONS, "hello-00003").await.is_none());

    // Deleting the Service removes everything it owns.
    store
        .delete(
            "services.serving.knative.dev",
            "default",
            "hello",
            Default::default(),
        )
        .await
        .unwrap();
    for (info, name) in [
        (&kinds::CONFIGURATIONS, "hello"),
        (&kinds::ROUTES, "hello"),
        (&kinds::REVISIONS, "hello-00001"),
    ] {
        assert!(
            get(store, info, name).await.is_none(),
            "{name} survived its owner"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_reports_missing_revisions_and_tags() {
    let env = start();
    let store = &env.store;
    let mut svc = service("split", "v1");
    svc["spec"]["traffic"] = json!([
        {"latestRevision": true, "percent": 50},
        {"revisionName": "split-00009", "percent": 50, "tag": "old"},
    ]);
    store
        .create(
            "services.serving.knative.dev",
            admitted(Operation::Create, None, svc),
        )
        .await
        .unwrap();
    let route = eventually("route status", async || {
        let r = get(store, &kinds::ROUTES, "split").await?;
        condition(&r, "AllTrafficAssigned").is_some().then_some(r)
    })
    .await;
    let c = condition(&route, "AllTrafficAssigned").unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "RevisionMissing");
    assert!(c["message"].as_str().unwrap().contains("split-00009"));
    assert_eq!(route["spec"]["traffic"][0]["configurationName"], "split");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_configuration_is_not_taken_over() {
    let env = start();
    let store = &env.store;
    let squatter = json!({
        "apiVersion": "serving.knative.dev/v1", "kind": "Configuration",
        "metadata": {"name": "taken", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"command": ["true"]}]}}},
    });
    let squatter = admit(
        &kinds::CONFIGURATIONS,
        Operation::Create,
        None,
        squatter,
        &AdmissionContext::new("x"),
    )
    .unwrap();
    store
        .create("configurations.serving.knative.dev", squatter)
        .await
        .unwrap();
    store
        .create(
            "services.serving.knative.dev",
            admitted(Operation::Create, None, service("taken", "v1")),
        )
        .await
        .unwrap();
    let svc = eventually("NotOwned", async || {
        let s = get(store, &kinds::SERVICES, "taken").await?;
        let c = condition(&s, "ConfigurationsReady")?;
        (c["reason"] == "NotOwned").then_some(s)
    })
    .await;
    assert_eq!(condition(&svc, "Ready").unwrap()["status"], "False");
    let cfg = get(store, &kinds::CONFIGURATIONS, "taken").await.unwrap();
    assert!(
        cfg["metadata"].get("ownerReferences").is_none(),
        "the squatter's configuration was modified"
    );
}

/// A Route pointing at a revision that does not exist yet must notice when it appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_notices_a_revision_that_appears_later() {
    let env = start();
    let store = &env.store;
    let mut svc = service("later", "v1");
    svc["spec"]["traffic"] = json!([
        {"latestRevision": true, "percent": 50},
        {"revisionName": "later-00002", "percent": 50},
    ]);
    store
        .create(
            "services.serving.knative.dev",
            admitted(Operation::Create, None, svc),
        )
        .await
        .unwrap();
    let assigned = async |reason: &str| {
        let r = get(store, &kinds::ROUTES, "later").await?;
        let c = condition(&r, "AllTrafficAssigned")?;
        (c["reason"] == reason).then_some(c.clone())
    };
    let missing = eventually("RevisionMissing", async || {
        assigned("RevisionMissing").await
    })
    .await;
    assert_eq!(missing["status"], "False");
    // A template change creates later-00002; the route must re-resolve on its own. The
    // controller writes the Service's status meanwhile: retry a stale read, as clients do.
    for attempt in 0.. {
        let cur = get(store, &kinds::SERVICES, "later").await.unwrap();
        let mut next = cur.clone();
        next["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("v2");
        match store
            .update(
                "services.serving.knative.dev",
                admitted(Operation::Update, Some(&cur), next),
            )
            .await
        {
            Ok(_) => break,
            Err(wisp_store::StoreError::Conflict { .. }) if attempt < 20 => continue,
            Err(e) => panic!("update: {e}"),
        }
    }
    let c = eventually("route re-resolved", async || {
        let r = get(store, &kinds::ROUTES, "later").await?;
        let c = condition(&r, "AllTrafficAssigned")?;
        (c["status"] != "False").then_some(c.clone())
    })
    .await;
    // Found, but not ready: no data plane yet.
    assert_eq!(c["status"], "Unknown", "{c}");
}
