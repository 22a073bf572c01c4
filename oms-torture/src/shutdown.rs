use crate::{Common, Result, Verdict};
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
}
pub async fn run(_args: Args) -> Result<Verdict> {
    Ok(Verdict::new("shutdown"))
}
