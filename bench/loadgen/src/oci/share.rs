//! Sharing: one Service pinned at N replicas (`min-scale` = `max-scale` = N) of the big image,
//! on a daemon that already pulled it (the last pull round's, its own Service deleted first).
//! Once all N run: disk use of the image store and the replica directories together (`du
//! -skx` in one invocation: hard links counted once, the replicas' mounted root file systems
//! not entered) against N copies of the unpacked image; the layer directories under
//! `oci/layers`; and each replica's root from /proc/mounts: an overlay whose lower directories
//! are the store's layers, the same for every replica.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{
    ImageInfo, Opts, PAGE, delete_service, du_kib, overlays_under, replica_dirs, service_body,
    wait_ready, wait_replicas_gone,
};
use crate::daemon::Daemon;
use crate::data_plane::create_service;
use crate::http::Conn;
use crate::stats::ms;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Share {
    pub replicas: u32,
    /// POST → Service Ready and its revision with N replicas.
    pub ready_ms: f64,
    /// `du -skx oci replicas` (one invocation).
    pub total_kib: u64,
    pub blobs_kib: u64,
    pub layers_kib: u64,
    /// Flattened root file systems (the fallback when overlayfs cannot be used).
    pub flat_rootfs_kib: u64,
    /// Everything under replicas/ but the mounted roots: upper and work dirs, bundles.
    pub replicas_kib: u64,
    /// The image's own unpacked layers.
    pub image_kib: u64,
    /// Directories under oci/layers, and the image's layer count.
    pub layer_dirs: usize,
    pub image_layers: usize,
    pub replica_dirs: usize,
    /// Overlay mounts under the revision's replica directories.
    pub overlay_mounts: usize,
    /// Distinct `lowerdir` lists among them (1 = all share the same layers).
    pub distinct_lowerdirs: usize,
    /// Every lower directory is one of the store's layers.
    pub lowers_in_store: bool,
    /// Requests through the gateway that answered the page.
    pub answered: usize,
}

impl Share {
    /// The claim: N replicas share one unpacked copy on disk.
    pub fn shared(&self) -> bool {
        self.layer_dirs == self.image_layers
            && self.overlay_mounts == self.replicas as usize
            && self.distinct_lowerdirs == 1
            && self.lowers_in_store
            && self.replicas_kib < self.image_kib
    }
}

fn count_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0)
}

pub async fn run(
    o: &Opts,
    image: &ImageInfo,
    kept: Option<(Daemon, PathBuf)>,
) -> anyhow::Result<Share> {
    let n = o.share_replicas;
    let (d, data) = match kept {
        Some(k) => k,
        None => {
            let data = o.workdir.join("share/data");
            let mut d = Daemon::spawn_with(&o.bin, &data, o.pidfile.as_deref(), &[]).await?;
            d.wait_synced().await?;
            (d, data)
        }
    };
    let mut api = Conn::connect(d.api).await?;
    // The pull round's Service: its replica would be an (N+1)th.
    let (status, _) = api
        .get(&format!("{}/big", crate::data_plane::SERVICES))
        .await?;
    if status == StatusCode::OK {
        delete_service(&mut api, "big").await?;
        wait_replicas_gone(&data, "big-00001", Duration::from_secs(30), &d).await?;
    }
    let scale = n.to_string();
    let annotations = [
        ("autoscaling.knative.dev/min-scale", scale.as_str()),
        ("autoscaling.knative.dev/max-scale", scale.as_str()),
    ];
    let t0 = Instant::now();
    create_service(
        &mut api,
        service_body("share", &image.reference, &annotations),
    )
    .await?;
    let (svc, rev) = wait_ready(
        &mut api,
        "share",
        |s| s.ready && s.actual == Some(i64::from(n)),
        Duration::from_millis(20),
        Duration::from_secs(120),
        &d,
    )
    .await?;
    let rev_dir = data.join("replicas/default/share-00001");
    let deadline = Instant::now() + Duration::from_secs(30);
    while overlays_under(&rev_dir).len() < n as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut gw = Conn::connect_host(d.gateway_addr()?, "share.default.localhost").await?;
    let mut answered = 0;
    for _ in 0..20 {
        let (status, body) = gw.get("/").await?;
        if status == StatusCode::OK && body == PAGE.as_bytes() {
            answered += 1;
        }
    }

    let oci = data.join("oci");
    let replicas = data.join("replicas");
    let layers = oci.join("layers");
    let image_layer_dirs: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| layers.join(l.digest.trim_start_matches("sha256:")))
        .collect();
    let image_layer_refs: Vec<&Path> = image_layer_dirs.iter().map(PathBuf::as_path).collect();
    let mounts = overlays_under(&rev_dir);
    let lowerdirs: BTreeSet<Vec<PathBuf>> = mounts.iter().map(|m| m.lower.clone()).collect();
    let share = Share {
        replicas: n,
        ready_ms: ms(svc.max(rev) - t0),
        total_kib: du_kib(&[&oci, &replicas])?,
        blobs_kib: du_kib(&[&oci.join("blobs")])?,
        layers_kib: du_kib(&[&layers])?,
        flat_rootfs_kib: du_kib(&[&oci.join("rootfs")])?,
        replicas_kib: du_kib(&[&replicas])?,
        image_kib: du_kib(&image_layer_refs).context("the image's layer directories")?,
        layer_dirs: count_dirs(&layers),
        image_layers: image.layers.len(),
        replica_dirs: replica_dirs(&data, "share-00001").len(),
        overlay_mounts: mounts.len(),
        distinct_lowerdirs: lowerdirs.len(),
        lowers_in_store: !mounts.is_empty()
            && mounts
                .iter()
                .all(|m| !m.lower.is_empty() && m.lower.iter().all(|l| l.starts_with(&layers))),
        answered,
    };
    eprintln!(
        "  {n} replicas Ready in {:.0} ms: oci + replicas {} KiB (image unpacked {} KiB, × {n} = {} KiB); {} layer dir(s), {} overlay mount(s), {} distinct lowerdir list(s)",
        share.ready_ms,
        share.total_kib,
        share.image_kib,
        share.image_kib * u64::from(n),
        share.layer_dirs,
        share.overlay_mounts,
        share.distinct_lowerdirs
    );
    drop(api);
    drop(gw);
    d.stop().await?;
    Ok(share)
}
