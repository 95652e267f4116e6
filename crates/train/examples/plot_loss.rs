//! Plot a training run's loss curves: `plot_loss LOSS.csv OUT.png`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, png] = args.as_slice() else {
        return Err("usage: plot_loss LOSS.csv OUT.png".into());
    };
    finecast_train::train::plot_loss_csv(csv.as_ref(), png.as_ref())?;
    Ok(())
}
