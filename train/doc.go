// Package train trains covseg's 3D U-Net with the paper's recipe and keeps
// a run resumable.
//
// # The recipe
//
// Bressem et al. 2021 follow faimed3d's COVID-19 example (fastai): the loss
// is (1 − soft Dice of class 1) + cross-entropy, the Dice taken over the
// whole batch at once (Loss); the optimiser is fastai's Adam with decoupled
// weight decay, i.e. AdamW (β2 0.99, eps 1e-5, weight decay 1e-4 on
// convolution weights only, per-parameter step counts), written here in
// GoMLX graph operations so that β1 and the learning rate can follow the
// schedule and groups can differ (AdamW); every phase is a fit_one_cycle
// (OneCycle: cosine warm-up over the first 25 % of the updates from lr/25
// to lr, cosine annealing to lr/1e5, β1 0.95 → 0.85 → 0.95); phase 1 trains
// 3 epochs at lr 1e-2 with the encoder's convolutions frozen (its BatchNorm
// statistics, γ and β still train: fastai's train_bn), phase 2 trains
// everything for 50 epochs at lr 1e-3. Batches of one case, gradients
// optionally summed over several batches before an update, the global
// gradient norm optionally clipped. DefaultConfig holds these numbers;
// ReadConfig reads a YAML file that overrides some of them.
//
// The schedule advances per optimiser update: update u of a phase of U
// updates (⌈batches/accumulate⌉ per epoch) takes the values at u/U.
//
// # Data
//
// Run takes its batches from a Source, whose Epoch(e, skip) must yield the
// same batches for the same epoch whatever happened before (order and
// augmentation drawn from the seed, the epoch and the batch index).
// MemorySource serves preprocessed cases from memory; covseg train adapts
// the loader package (cached preprocessing, augmentation, prefetching),
// whose batches depend only on the seed and their position. The config's
// data section embeds preprocess.Config and augment.Config.
//
// # The run folder
//
//	config.yaml     the resolved config the run was started with
//	last.ckpt       network, optimiser state and State after each epoch (and at Ctrl-C)
//	best.ckpt       network of the best validation Dice (per-case mean), no optimiser state
//	epoch_NNN.ckpt  copies of last.ckpt per epoch, if checkpoint.keep_epochs says so
//	metrics.jsonl   one EpochRecord per epoch (metrics.csv: the same as CSV)
//	steps.jsonl     one StepRecord per trained batch
//	curves.png      loss and validation Dice per epoch
//
// Checkpoints are model files (model.Save): the optimiser state lives in
// context variables under ScopeMoment1, ScopeMoment2, ScopeStep (and
// ScopeAccum with accumulation), the run's State as JSON bytes in the
// variable ScopeRun/"state". Every file is written to a temporary name and
// renamed. Metrics files are rewritten from the State's history, so after a
// crash and a resume they match the checkpoint exactly.
//
// # Resuming
//
// Cancelling Run's context (covseg train turns SIGINT and SIGTERM into
// that) finishes the current batch, saves last.ckpt with the position
// reached — inside an epoch, even inside an accumulation window — and
// returns. Run with Options.Resume continues from it: same phase, epoch,
// batch and schedule position, same optimiser state and accumulated
// gradients, same data (the Source contract). On a deterministic backend
// (covseg's CPU backend) the resumed run reproduces the uninterrupted one
// bit for bit (TestResumeExact).
//
// # Backends and precision
//
// NewBackend picks GOMLX_BACKEND's engine (xla:cuda, xla:/path/plugin.so) or
// covseg's CPU backend. backend.dtype bfloat16 trains in mixed precision
// (float32 weights, optimiser, BatchNorm and loss; bfloat16 convolutions)
// on XLA; the CPU backends refuse it, because simplego sums convolution
// gradients in bfloat16.
package train
