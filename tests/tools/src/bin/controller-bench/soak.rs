//! `--soak-minutes`: executions at a steady rate for a long time, each deleted a while after it
//! completed (as its RemediationRequest's cleanup would), so the live population is steady too.
//! The controller's memory, descriptors, threads and runtime tasks must then stay flat: a sample
//! every 10 s, a row per minute, and the drift between minute 5 and the last minute.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use hdrhistogram::Histogram;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use wfe_shared::{Phase, WorkflowExecution};
use wfe_tools::procfs::{open_fds, rss_kib, threads};
use wfe_tools::tekton::FinishedAt;

pub struct Soak {
    pub wfes: Api<WorkflowExecution>,
    pub template: WorkflowExecution,
    pub pid: u32,
    pub health: SocketAddr,
    pub rate: u64,
    pub minutes: u64,
    /// How long a completed execution stays before the soak deletes it.
    pub keep: Duration,
    pub finished_at: FinishedAt,
}

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    completed: AtomicU64,
    /// Reached Failed or Skipped: none should.
    other: AtomicU64,
    gone: AtomicU64,
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: usize,
    sockets: usize,
    threads: u64,
    tasks: u64,
    created: u64,
    completed: u64,
    gone: u64,
}

fn runtime_tasks(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("wfe_controller_runtime_tasks "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

pub async fn run(s: Soak) -> anyhow::Result<()> {
    let counts = Arc::new(Counts::default());
    // Completed executions waiting for their deletion, oldest first.
    let to_delete: Arc<Mutex<VecDeque<(Instant, String)>>> = Arc::default();
    // PipelineRun success → Completed, per minute of the run.
    let latency: Arc<Mutex<HashMap<u64, Histogram<u64>>>> = Arc::default();
    let started = Instant::now();
    {
        let (wfes, counts, to_delete, latency, finished_at) = (
            s.wfes.clone(),
            counts.clone(),
            to_delete.clone(),
            latency.clone(),
            s.finished_at.clone(),
        );
        tokio::spawn(async move {
            let mut seen: HashSet<String> = HashSet::new();
            let mut events = watcher(wfes, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                match event {
                    watcher::Event::Apply(w) | watcher::Event::InitApply(w) => {
                        let Some(status) = w.status.as_ref() else {
                            continue;
                        };
                        if !status.phase.is_terminal() || !seen.insert(w.name_any()) {
                            continue;
                        }
                        if status.phase != Phase::Completed {
                            counts.other.fetch_add(1, Ordering::Relaxed);
                        }
                        counts.completed.fetch_add(1, Ordering::Relaxed);
                        let now = Instant::now();
                        let run = status.pipeline_run_ref.as_ref().map(|r| r.name.clone());
                        let finished = run.and_then(|r| finished_at.lock().unwrap().remove(&r));
                        if let Some(f) = finished {
                            let minute = now.duration_since(started).as_secs() / 60;
                            let us = now.saturating_duration_since(f).as_micros().max(1) as u64;
                            let mut l = latency.lock().unwrap();
                            let h = l.entry(minute).or_insert_with(|| {
                                Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
                            });
                            let _ = h.record(us);
                        }
                        to_delete.lock().unwrap().push_back((now, w.name_any()));
                    }
                    watcher::Event::Delete(w) if seen.remove(&w.name_any()) => {
                        counts.gone.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
    }
    // The deleter: each completed execution `keep` after it completed.
    {
        let (wfes, to_delete, keep) = (s.wfes.clone(), to_delete.clone(), s.keep);
        tokio::spawn(async move {
            loop {
                let due: Vec<String> = {
                    let mut q = to_delete.lock().unwrap();
                    let mut due = Vec::new();
                    while q.front().is_some_and(|(at, _)| at.elapsed() >= keep) {
                        due.extend(q.pop_front().map(|(_, n)| n));
                    }
                    due
                };
                for name in due {
                    if let Err(e) = wfes.delete(&name, &DeleteParams::default()).await {
                        eprintln!("soak: deleting {name}: {e}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let run_for = Duration::from_secs(s.minutes * 60);
    // The creator: `rate` per second, each on a target of its own.
    let creator = {
        let (wfes, template, counts, rate) =
            (s.wfes.clone(), s.template.clone(), counts.clone(), s.rate);
        tokio::spawn(async move {
            let mut i = 0u64;
            while started.elapsed() < run_for {
                let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let mut w = template.clone();
                w.metadata.name = Some(format!("soak-{i}"));
                w.spec.target_resource = format!("ns/deployment/soak-{i}");
                wfes.create(&PostParams::default(), &w).await?;
                counts.created.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(())
        })
    };
    println!(
        "soak: {}/s for {} min, each execution deleted {} s after it completed; a row per minute\n",
        s.rate,
        s.minutes,
        s.keep.as_secs()
    );
    println!(
        "| minute | created | completed | deleted | live | RSS MiB | fds | sockets | threads | runtime tasks | success → Completed p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_row = 1u64;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let metrics = super::controller_metrics(s.health).await;
        let (rss_kib, _) = rss_kib(s.pid);
        let (fds, sockets) = open_fds(s.pid);
        let sample = Sample {
            at: started.elapsed(),
            rss_kib,
            fds,
            sockets,
            threads: threads(s.pid),
            tasks: runtime_tasks(&metrics),
            created: counts.created.load(Ordering::Relaxed),
            completed: counts.completed.load(Ordering::Relaxed),
            gone: counts.gone.load(Ordering::Relaxed),
        };
        if rss_kib == 0 {
            bail!("the controller (pid {}) is gone", s.pid);
        }
        if sample.at.as_secs() >= next_row * 60 {
            let p99 = latency
                .lock()
                .unwrap()
                .get(&(next_row - 1))
                .map(|h| format!("{:.0} ms", h.value_at_quantile(0.99) as f64 / 1000.0))
                .unwrap_or_else(|| "—".into());
            println!(
                "| {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
                next_row,
                sample.created,
                sample.completed,
                sample.gone,
                sample.created - sample.gone,
                sample.rss_kib as f64 / 1024.0,
                sample.fds,
                sample.sockets,
                sample.threads,
                sample.tasks,
                p99
            );
            next_row += 1;
        }
        samples.push(sample);
    }
    creator.await??;
    // Drain: everything created completes and is deleted.
    let created = counts.created.load(Ordering::Relaxed);
    let deadline = Instant::now() + s.keep + Duration::from_secs(60);
    while counts.gone.load(Ordering::Relaxed) < created && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (completed, gone, other) = (
        counts.completed.load(Ordering::Relaxed),
        counts.gone.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed),
    );
    println!(
        "\ncreated {created}, completed {completed} (of which not Completed: {other}), deleted {gone}; stuck: {}",
        created - gone
    );
    // Minute 5 against the last minute, each the mean of its samples.
    let window = |from: u64| {
        let picked: Vec<&Sample> = samples
            .iter()
            .filter(|x| x.at.as_secs() >= from * 60 && x.at.as_secs() < (from + 1) * 60)
            .collect();
        let n = picked.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Sample) -> f64| picked.iter().map(|x| f(x)).sum::<f64>() / n;
        (
            mean(&|x| x.rss_kib as f64 / 1024.0),
            mean(&|x| x.sockets as f64),
            mean(&|x| x.fds as f64),
            mean(&|x| x.threads as f64),
            mean(&|x| x.tasks as f64),
        )
    };
    let first = 5.min(s.minutes.saturating_sub(1));
    let last = s.minutes.saturating_sub(1);
    let (a, b) = (window(first), window(last));
    println!(
        "minute {} → minute {}: RSS {:.1} → {:.1} MiB ({:+.1}%), sockets {:.1} → {:.1}, fds {:.1} → {:.1}, threads {:.1} → {:.1}, runtime tasks {:.1} → {:.1}",
        first + 1,
        last + 1,
        a.0,
        b.0,
        (b.0 - a.0) / a.0 * 100.0,
        a.1,
        b.1,
        a.2,
        b.2,
        a.3,
        b.3,
        a.4,
        b.4
    );
    let after_warmup = samples.iter().filter(|x| x.at.as_secs() >= first * 60);
    let peak = after_warmup.fold((0u64, 0usize, 0u64), |m, x| {
        (m.0.max(x.rss_kib), m.1.max(x.sockets), m.2.max(x.tasks))
    });
    println!(
        "highest after minute {}: RSS {:.1} MiB, sockets {}, runtime tasks {}",
        first + 1,
        peak.0 as f64 / 1024.0,
        peak.1,
        peak.2
    );
    if created != gone || other > 0 {
        bail!("{} executions stuck, {other} not Completed", created - gone);
    }
    Ok(())
}
