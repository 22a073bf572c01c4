use crate::{Common, Result, Verdict};
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
}
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    #[arg(long)]
    pub db: std::path::PathBuf,
}
pub async fn run(_args: Args) -> Result<Verdict> {
    Ok(Verdict::new("contention"))
}
pub fn hold_lock(_args: &HoldArgs) -> Result<Verdict> {
    Ok(Verdict::default())
}
