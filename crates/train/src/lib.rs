//! Training finecast's networks and scoring them for the model card.
//!
//! * [`data`]: perfect-model training pairs built with `finecast-protocol`
//!   (the same coarsening, DEM loading and wind pairing as `finecast
//!   evaluate`), from the sources a [`TrainConfig`] names.
//! * [`train()`]: the training loop (Burn autodiff + Adam), checkpoints,
//!   resume, loss curves; [`finecast_model::save_model`] writes the weights.
//! * [`skill`]: the model card's skill tables.
//! * [`crossval`]: leave-one-source-out cross-validation (train without a
//!   source, score on it with `finecast evaluate`'s protocol).
//! * [`shrinkage`]: the do-no-harm shrinkage of a network, fitted on those
//!   folds.
//!
//! Kept apart from `finecast-model` so that inference (jobs, the server)
//! links no autodiff or optimiser.

pub mod crossval;
pub mod data;
pub mod shrinkage;
pub mod skill;
pub mod train;

pub use train::{train, Progress, TrainConfig, TrainReport};
