//! `idle-conns`: holds N long-poll requests on `/api/changes` (or, with
//! `--stream`, N event streams on `/api/changes/stream`) open, each on its
//! own connection, then reads the daemon's resident memory and times
//! sequential `GET /healthz` requests, compared with the same before.

use std::time::{Duration, Instant};

use crate::daemon::{self, check_open_files, healthz, rss_mib};
use crate::http::{self, Conn};
use crate::{IdleArgs, Result};

pub async fn run(args: &IdleArgs) -> Result<()> {
    let addr = http::loopback_addr(&args.url)?;
    check_open_files(args.count)?;
    let mut control = Conn::connect(addr).await?;
    let baseline = http::feed_waiters(&mut control, addr).await?;
    let rss_before = rss_mib(args.pid)?;
    let mut before = healthz(addr, args.healthz).await?;

    let started = Instant::now();
    let held = if args.stream {
        daemon::hold_streams(addr, &args.token, args.count).await?
    } else {
        daemon::hold_long_polls(addr, &args.token, args.count).await?
    };
    // Every request is registered as a waiter: nothing answered them early.
    http::await_waiters(
        &mut control,
        addr,
        baseline + args.count as u64,
        Duration::from_secs(30),
    )
    .await?;
    let open_secs = started.elapsed().as_secs_f64();
    let rss = rss_mib(args.pid)?;
    let mut during = healthz(addr, args.healthz).await?;
    let waiting = http::feed_waiters(&mut control, addr).await?;
    if waiting < baseline + args.count as u64 {
        return Err(format!("only {waiting} long-polls were still waiting").into());
    }

    // Close them and see the daemon let go of them.
    drop(held);
    let released = Instant::now();
    let mut left = waiting;
    while left > baseline && released.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = http::feed_waiters(&mut control, addr).await?;
    }
    println!(
        "idle-conns kind={} count={} open_s={open_secs:.1} rss_before_mb={rss_before:.1} rss_mb={rss:.1} {} {} released_s={:.1} still_waiting={}",
        if args.stream { "stream" } else { "long-poll" },
        args.count,
        before.summary("before_healthz_"),
        during.summary("healthz_"),
        released.elapsed().as_secs_f64(),
        left.saturating_sub(baseline)
    );
    Ok(())
}
