//! The spec and root file system this crate makes, run by the real runc: a busybox image
//! built with `wisp build`, merged with a Kubernetes container, run once to completion.
//! Needs root, `runc` and `busybox-static` (see crates/oci/CI.md); fails, with what to
//! install, when they are missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use wisp_api::core::{Container, EnvVar, Quantity, SecurityContext, VolumeMount};
use wisp_oci::build::{BuildSpec, Copy, build};
use wisp_oci::manifest::Platform;
use wisp_oci::registry::{Client, ClientConfig};
use wisp_oci::spec::{self, Network, SpecOptions, UserDb, VolumeSource};
use wisp_oci::store::Store;
use wisp_oci::{Images, LayerFormat};

const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/bin/busybox";

fn run_once(store: Store, label: &str, network: Network) {
    assert!(
        Path::new(RUNC).exists(),
        "{RUNC} is missing: install it with `apt-get install -y runc` (see crates/oci/CI.md)"
    );
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install it with `apt-get install -y busybox-static` (see crates/oci/CI.md)"
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "running containers with runc needs root"
    );
    let data = store.root().parent().unwrap().to_path_buf();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    let image = build(
        &store,
        &BuildSpec {
            copies: vec![
                Copy::parse(&format!("{BUSYBOX}:/bin/busybox")).unwrap(),
                Copy {
                    src: src.path().join("passwd"),
                    dest: "/etc/passwd".into(),
                },
            ],
            entrypoint: Some(vec!["/bin/busybox".into()]),
            cmd: Some(vec!["true".into()]),
            env: vec![
                ("FROM_IMAGE".into(), "image".into()),
                ("SHARED".into(), "image".into()),
            ],
            user: Some("1000".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let images = Images::new(
        Arc::new(Client::new(ClientConfig::default())),
        store.clone(),
    );
    let img = store.image(&image.digest, &Platform::host()).unwrap();
    let replica = data.join("replica");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rootfs = rt.block_on(images.mount_rootfs(&img, &replica)).unwrap();
    // Released even when an assertion below fails.
    struct Release(wisp_oci::Rootfs);
    impl Drop for Release {
        fn drop(&mut self) {
            let _ = self.0.release();
        }
    }
    let _release = Release(rootfs.clone());

    let emptydir = replica.join("cache");
    std::fs::create_dir_all(&emptydir).unwrap();
    std::fs::set_permissions(
        &emptydir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let script = "echo uid=$(busybox id -u) gid=$(busybox id -g); echo env=$FROM_IMAGE,$SHARED,$PORT; \
                  echo host=$(busybox hostname); echo hi > /cache/note; echo pid1=$$; \
                  busybox cat /proc/self/cgroup >/dev/null; \
                  if busybox touch /rootfs-write 2>/dev/null; then echo root=rw; else echo root=ro; fi";
    let mut container = Container {
        command: vec!["/bin/busybox".into(), "sh".into(), "-c".into()],
        args: vec![script.into()],
        env: vec![EnvVar {
            name: "SHARED".into(),
            value: "container".into(),
            value_from: None,
        }],
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        volume_mounts: vec![VolumeMount {
            name: "cache".into(),
            mount_path: "/cache".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    container
        .resources
        .limits
        .insert("memory".into(), Quantity("64Mi".into()));
    container
        .resources
        .limits
        .insert("cpu".into(), Quantity("500m".into()));
    let id = format!("wisp-oci-test-{label}-{}", std::process::id());
    let opts = SpecOptions {
        rootfs: rootfs.path.clone(),
        rootfs_shared_read_only: rootfs.shared_read_only(),
        hostname: "hello-00001".into(),
        cgroups_path: Some(format!("/wisp-test/{id}")),
        network,
        volumes: BTreeMap::from([("cache".to_string(), VolumeSource::HostDir(emptydir.clone()))]),
        user_db: Some(UserDb::read(&rootfs.path)),
        ..Default::default()
    };
    let spec = spec::build(
        &img.config.container(),
        &container,
        &[("PORT".to_string(), "8080".to_string())],
        &opts,
    )
    .unwrap();
    let bundle = data.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    let out = Command::new(RUNC)
        .args([
            "--root",
            &data.join("runc-state").to_string_lossy(),
            "run",
            "--bundle",
        ])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new(RUNC)
        .args([
            "--root",
            &data.join("runc-state").to_string_lossy(),
            "delete",
            "-f",
            &id,
        ])
        .output();
    rootfs.release().unwrap();
    // The cgroup parent runc left (best effort: another test may still use it).
    if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
        for c in controllers.flatten() {
            let _ = std::fs::remove_dir(c.path().join("wisp-test"));
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "uid=1000 gid=1000",
        "env=image,container,8080",
        "host=hello-00001",
        "pid1=1",
        "root=ro",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout:?}");
    }
    assert_eq!(
        std::fs::read_to_string(emptydir.join("note")).unwrap(),
        "hi\n"
    );
}

#[test]
fn runc_runs_the_spec_on_an_overlay_rootfs() {
    let data = tempfile::tempdir().unwrap();
    run_once(Store::open(data.path()).unwrap(), "overlay", Network::Host);
}

#[test]
fn runc_runs_the_spec_on_a_shared_flattened_rootfs() {
    let data = tempfile::tempdir().unwrap();
    run_once(
        Store::open_with_format(data.path(), LayerFormat::Markers).unwrap(),
        "shared",
        Network::New,
    );
}
