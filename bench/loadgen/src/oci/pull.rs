//! First pull: a fresh daemon (empty data dir) gets one Service of the big image by tag; the
//! clock runs from just before the POST. Milestones: "image resolved" (the tag pinned to a
//! digest, a HEAD to the registry) and "pulled image" from the daemon's log (their timestamps
//! against the wall clock at the POST; the second line also carries the daemon's own
//! `elapsed_ms` of the pull: manifest, config and layers fetched, digests checked, written to
//! its store); the revision Ready with one replica, which adds unpacking, the overlay mount
//! and the container's start, and the Service Ready (its Route programmed), both polled every
//! 5 ms; then the first answer through the gateway.
//!
//! The limit, alternated with the rounds: the registry alone, fetching manifest, config and
//! layer over one new keep-alive connection (what the pull must at least transfer).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::registry::{Registry, fetch_alone};
use super::{ImageInfo, Opts, PAGE, epoch_now, log_epoch, log_field, service_body, wait_ready};
use crate::daemon::Daemon;
use crate::data_plane::create_service;
use crate::http::Conn;
use crate::stats::ms;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Round {
    /// POST → "image resolved" log line.
    pub resolved_ms: f64,
    /// POST → "pulled image" log line.
    pub pulled_ms: f64,
    /// The daemon's `elapsed_ms` on "pulled image".
    pub pull_elapsed_ms: f64,
    /// POST → revision Ready with one replica.
    pub ready_ms: f64,
    /// POST → Service Ready (its Route programmed).
    pub service_ready_ms: f64,
    /// POST → first answer through the gateway (sent once both were seen).
    pub answered_ms: f64,
    /// The registry alone: manifest + config + layers.
    pub registry_alone_ms: f64,
    pub registry_alone_bytes: u64,
    /// Unpacked layers in the daemon's store after the pull (`du -skx oci/layers`).
    pub layers_kib: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pull {
    pub image: ImageInfo,
    pub rounds: Vec<Round>,
}

/// The time of the first daemon log line containing all of `needles`, and the line.
fn find_line(d: &Daemon, needles: &[&str]) -> Option<(f64, String)> {
    d.log_tail()
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| Some((log_epoch(l)?, l.to_owned())))
}

/// One round: a fresh daemon pulls and runs the image. Returns the daemon (its replica
/// running) so the caller may keep it.
async fn round(
    o: &Opts,
    image: &ImageInfo,
    r: usize,
    registry: &Registry,
) -> anyhow::Result<(Round, Daemon)> {
    let (alone, bytes) = fetch_alone(registry.addr, image)
        .await
        .context("the registry alone")?;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let data = o.workdir.join(format!("pull{r}/data"));
    let mut d = Daemon::spawn_with(&o.bin, &data, o.pidfile.as_deref(), &[]).await?;
    d.wait_synced().await?;
    let gateway = d.gateway_addr()?;
    let mut api = Conn::connect(d.api).await?;
    let mut gw = Conn::connect_host(gateway, "big.default.localhost").await?;
    let post_epoch = epoch_now();
    let t0 = Instant::now();
    create_service(&mut api, service_body("big", &image.reference, &[])).await?;
    let (svc_ready, ready) = wait_ready(
        &mut api,
        "big",
        |s| s.ready && s.actual == Some(1),
        Duration::from_millis(5),
        Duration::from_secs(60),
        &d,
    )
    .await?;
    let (status, body) = gw.get("/").await?;
    let answered = t0.elapsed();
    anyhow::ensure!(
        status == StatusCode::OK && body == PAGE.as_bytes(),
        "first request: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    // The log lines are read by another task of this thread: give it a turn.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (resolved, _) = find_line(&d, &["image resolved", "big-00001"])
        .with_context(|| format!("no \"image resolved\" line:\n{}", d.log_tail()))?;
    let (pulled, line) = find_line(&d, &["pulled image", &image.digest])
        .with_context(|| format!("no \"pulled image\" line:\n{}", d.log_tail()))?;
    let pull_elapsed_ms = log_field(&line, "elapsed_ms")
        .and_then(|v| v.parse::<f64>().ok())
        .context("no elapsed_ms on \"pulled image\"")?;
    let round = Round {
        resolved_ms: (resolved - post_epoch) * 1e3,
        pulled_ms: (pulled - post_epoch) * 1e3,
        pull_elapsed_ms,
        ready_ms: ms(ready - t0),
        service_ready_ms: ms(svc_ready - t0),
        answered_ms: ms(answered),
        registry_alone_ms: ms(alone),
        registry_alone_bytes: bytes,
        layers_kib: super::du_kib(&[&data.join("oci/layers")])?,
    };
    eprintln!(
        "  round {r}: resolved {:.0} ms, pulled {:.0} ms (daemon: {:.0} ms), Ready {:.0} ms, answered {:.0} ms; registry alone {:.0} ms",
        round.resolved_ms,
        round.pulled_ms,
        round.pull_elapsed_ms,
        round.ready_ms,
        round.answered_ms,
        round.registry_alone_ms
    );
    Ok((round, d))
}

/// All rounds; with `keep`, the last round's daemon is handed back running, with its data dir.
pub async fn run(
    o: &Opts,
    registry: &Registry,
    image: &ImageInfo,
    keep: bool,
) -> anyhow::Result<(Pull, Option<(Daemon, PathBuf)>)> {
    let mut pull = Pull {
        image: image.clone(),
        rounds: Vec::new(),
    };
    let mut kept = None;
    for r in 1..=o.pull_rounds {
        let (round, d) = round(o, image, r, registry)
            .await
            .with_context(|| format!("round {r}"))?;
        pull.rounds.push(round);
        if keep && r == o.pull_rounds {
            kept = Some((d, o.workdir.join(format!("pull{r}/data"))));
        } else {
            d.stop().await?;
            // Each round's data dir goes, so the disk holds one copy at a time.
            let _ = std::fs::remove_dir_all(o.workdir.join(format!("pull{r}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((pull, kept))
}
