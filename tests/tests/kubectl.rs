//! Real `kubectl --server URL` against wisp: apply, get (short names, -o json), describe,
//! edit, patch (merge and JSON), namespaces, and delete with cascade.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::Value;

fn write(d: &Daemon, file: &str, text: &str) -> String {
    let path = d.scratch.join(file);
    std::fs::write(&path, text).expect("write manifest");
    path.to_str().unwrap().to_string()
}

fn get(d: &Daemon, plural: &str, name: &str) -> Option<Value> {
    d.get_opt(&serving_path("default", plural, Some(name)))
}

fn wait_revision(d: &Daemon, name: &str) -> Value {
    wait_for(&format!("revision {name}"), || {
        get(d, "revisions", name).ok_or_else(|| "absent".to_string())
    })
}

/// The Configuration has caught up with its generation; returns its latest created revision.
fn settled_latest(d: &Daemon, name: &str) -> String {
    wait_for("the Configuration to settle", || {
        let c = get(d, "configurations", name).ok_or("no configuration")?;
        if c.pointer("/status/observedGeneration") == c.pointer("/metadata/generation")
            && !s(&c, "/status/latestCreatedRevisionName").is_empty()
        {
            Ok(s(&c, "/status/latestCreatedRevisionName").to_string())
        } else {
            Err(c.to_string())
        }
    })
}

fn env_value(rev: &Value) -> &str {
    s(rev, "/spec/containers/0/env/0/value")
}

#[test]
fn apply_get_describe_delete() {
    let d = Daemon::start();
    let file = write(&d, "hello.yaml", &service_yaml("hello", "one"));

    let out = d.kubectl(&["apply", "-f", &file]).success();
    assert_eq!(
        out.stdout.trim(),
        "service.serving.knative.dev/hello created",
        "{out}"
    );
    wait_revision(&d, "hello-00001");

    // A change: configured, and a second revision.
    write(&d, "hello.yaml", &service_yaml("hello", "two"));
    let out = d.kubectl(&["apply", "-f", &file]).success();
    assert_eq!(
        out.stdout.trim(),
        "service.serving.knative.dev/hello configured",
        "{out}"
    );
    let rev2 = wait_revision(&d, "hello-00002");
    assert_eq!(env_value(&rev2), "two");
    assert_eq!(settled_latest(&d, "hello"), "hello-00002");

    // The same manifest again changes nothing stored. (kubectl may still print "configured":
    // its JSON merge patch replaces the defaulted containers list wholesale, as against a
    // real Knative cluster; what matters is that the object is untouched.)
    let before = get(&d, "services", "hello").unwrap();
    let out = d.kubectl(&["apply", "-f", &file]).success();
    assert!(
        out.stdout.trim() == "service.serving.knative.dev/hello unchanged"
            || out.stdout.trim() == "service.serving.knative.dev/hello configured",
        "{out}"
    );
    let after = get(&d, "services", "hello").unwrap();
    assert_eq!(
        after["metadata"]["generation"], before["metadata"]["generation"],
        "a no-op apply bumped the generation"
    );
    assert_eq!(
        after["spec"], before["spec"],
        "a no-op apply changed the spec"
    );
    assert_eq!(settled_latest(&d, "hello"), "hello-00002");
    assert!(get(&d, "revisions", "hello-00003").is_none());

    // get with short names.
    for (kind, first) in [
        ("ksvc", "hello"),
        ("rev", "hello-00001"),
        ("cfg", "hello"),
        ("rt", "hello"),
        ("kservice", "hello"),
        ("revisions", "hello-00002"),
    ] {
        let out = d.kubectl(&["get", kind]).success();
        let t = Table::parse(&out.stdout);
        assert!(t.firsts().contains(&first), "kubectl get {kind}: {out}");
    }
    let out = d.kubectl(&["get", "ksvc"]).success();
    let t = Table::parse(&out.stdout);
    assert_eq!(
        t.cell("hello", "URL"),
        "http://hello.default.localhost",
        "{out}"
    );
    assert_eq!(t.cell("hello", "LATESTCREATED"), "hello-00002", "{out}");

    let out = d.kubectl(&["get", "ksvc", "hello", "-o", "json"]).success();
    let obj: Value = serde_json::from_str(&out.stdout).expect("kubectl -o json is JSON");
    assert_eq!(obj["apiVersion"], "serving.knative.dev/v1");
    assert_eq!(obj["kind"], "Service");
    assert_eq!(s(&obj, "/metadata/name"), "hello");
    assert_eq!(s(&obj, "/status/latestCreatedRevisionName"), "hello-00002");

    let out = d.kubectl(&["describe", "ksvc", "hello"]).success();
    assert!(out.stdout.contains("hello"), "{out}");
    assert!(out.stdout.contains("Service"), "{out}");

    // Delete cascades to the Configuration, Route and Revisions.
    let out = d.kubectl(&["delete", "ksvc", "hello"]).success();
    assert!(out.stdout.contains("\"hello\" deleted"), "{out}");
    assert!(get(&d, "services", "hello").is_none());
    wait_for("the children to be gone", || {
        let left: Vec<&str> = [
            ("configurations", "hello"),
            ("routes", "hello"),
            ("revisions", "hello-00001"),
            ("revisions", "hello-00002"),
        ]
        .into_iter()
        .filter(|(p, n)| get(&d, p, n).is_some())
        .map(|(p, _)| p)
        .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?} remain"))
        }
    });
    let out = d.kubectl(&["get", "rev"]).success();
    assert!(!out.stdout.contains("hello"), "{out}");
    assert!(out.stderr.contains("No resources found"), "{out}");
    let out = d.kubectl(&["get", "ksvc", "hello"]).failure();
    assert!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "{out}"
    );
}

#[test]
fn namespaces_exist_on_first_use() {
    let d = Daemon::start();
    let out = d.kubectl(&["get", "namespaces"]).success();
    let t = Table::parse(&out.stdout);
    assert_eq!(t.firsts(), ["default"], "{out}");
    assert_eq!(t.cell("default", "STATUS"), "Active");

    let file = write(&d, "team.yaml", &service_yaml("api", "x"));
    d.kubectl(&["-n", "team", "apply", "-f", &file]).success();
    let out = d.kubectl(&["get", "ns"]).success();
    let t = Table::parse(&out.stdout);
    assert_eq!(t.firsts(), ["default", "team"], "{out}");
    assert_eq!(t.cell("team", "STATUS"), "Active");

    // The Service lives in its namespace only.
    wait_for("api's URL in `kubectl -n team get ksvc`", || {
        let out = d.kubectl(&["-n", "team", "get", "ksvc"]).success();
        let t = Table::parse(&out.stdout);
        assert_eq!(t.firsts(), ["api"], "{out}");
        match t.cell("api", "URL") {
            "" => Err(out.stdout),
            url => {
                assert_eq!(url, "http://api.team.localhost", "{out}");
                Ok(())
            }
        }
    });
    let out = d.kubectl(&["get", "ksvc"]).success();
    assert!(!out.stdout.contains("api"), "{out}");
    wait_for("api-00001 in team", || {
        d.get_opt(&serving_path("team", "revisions", Some("api-00001")))
            .ok_or_else(|| "absent".to_string())
    });
    let out = d.kubectl(&["get", "rev", "-A"]).success();
    assert!(out.stdout.contains("api-00001"), "{out}");
}

#[test]
fn edit_and_patch_make_revisions() {
    let d = Daemon::start();
    d.wisp_stdin(&["apply", "-f", "-"], Some(&service_yaml("hello", "v1")))
        .success();
    wait_revision(&d, "hello-00001");

    // kubectl edit with an editor that changes the env value.
    let editor = d.scratch.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nset -e\ngrep -q 'value: v1' \"$1\"\nsed -i 's/value: v1/value: edited/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = d.kubectl_cmd(&["edit", "ksvc", "hello"]);
    cmd.env("KUBE_EDITOR", &editor);
    let out = d.run(cmd).success();
    assert!(out.stdout.contains("edited"), "{out}");
    let rev = wait_revision(&d, "hello-00002");
    assert_eq!(env_value(&rev), "edited", "{rev}");

    // Merge patch: a template annotation is a template change, so a new revision.
    d.kubectl(&[
        "patch",
        "ksvc",
        "hello",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"autoscaling.knative.dev/target":"10"}}}}}"#,
    ])
    .success();
    let rev = wait_revision(&d, "hello-00003");
    assert_eq!(
        s(
            &rev,
            "/metadata/annotations/autoscaling.knative.dev~1target"
        ),
        "10",
        "{rev}"
    );
    assert_eq!(env_value(&rev), "edited");

    // JSON patch on the env value.
    d.kubectl(&[
        "patch",
        "ksvc",
        "hello",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/value","value":"json"}]"#,
    ])
    .success();
    let rev = wait_revision(&d, "hello-00004");
    assert_eq!(env_value(&rev), "json", "{rev}");
    assert_eq!(settled_latest(&d, "hello"), "hello-00004");

    // A patch that breaks validation is refused and stores nothing.
    let before = get(&d, "services", "hello").unwrap();
    let out = d
        .kubectl(&[
            "patch",
            "ksvc",
            "hello",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/env/0/name","value":"PORT"}]"#,
        ])
        .failure();
    assert!(
        out.stderr
            .contains("spec.template.spec.containers[0].env[0].name"),
        "{out}"
    );
    // (The controller may write the status meanwhile; spec and generation must not move.)
    let after = get(&d, "services", "hello").unwrap();
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
}

#[test]
fn server_side_apply_of_an_existing_object_is_refused_clearly() {
    let d = Daemon::start();
    let file = write(&d, "hello.yaml", &service_yaml("hello", "one"));
    d.kubectl(&["apply", "-f", &file]).success();
    let before = get(&d, "services", "hello").unwrap();
    write(&d, "hello.yaml", &service_yaml("hello", "two"));
    let out = d
        .kubectl(&["apply", "--server-side", "-f", &file])
        .failure();
    assert!(
        out.stderr.contains("server-side apply is not supported"),
        "{out}"
    );
    let after = get(&d, "services", "hello").unwrap();
    assert_eq!(after["spec"], before["spec"]);
}

#[test]
fn server_side_apply_of_a_new_object_is_refused_clearly() {
    let d = Daemon::start();
    let file = write(&d, "hello.yaml", &service_yaml("hello", "one"));
    let out = d
        .kubectl(&["apply", "--server-side", "-f", &file])
        .failure();
    assert!(
        out.stderr.contains("server-side apply is not supported"),
        "kubectl should say why, not that the object is missing: {out}"
    );
    assert!(get(&d, "services", "hello").is_none());
}
