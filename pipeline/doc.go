// Package pipeline holds covseg's workflows as library functions, so that
// the command line, a server or another program run them alike:
//
//   - SegmentBatch: CTs (NIfTI files, DICOM folders, batch folders) to
//     masks, probability maps, severity reports and PNG montages with one
//     model loaded once, bad cases reported and skipped;
//   - Evaluate: predicted against reference masks, paired by case name or
//     by a manifest, with a table, CSV, Markdown and JSON report;
//   - Reproduce: the paper's protocol end to end (data, training,
//     segmentation, evaluation, the table);
//   - Demo: train, export, segment and evaluate on synthetic phantoms;
//   - LoadTrainData: a manifest's cases as training and validation
//     sources for package train;
//   - BenchInfer and BenchSegment: the inference benchmarks, with the CPU's
//     description and a PyTorch reference run.
//
// Every per-case figure is a metrics.CaseResult, one JSON schema for all.
// The package sits above the others: it imports volume, data, model,
// engine, infer, train and eval; none of them imports it.
package pipeline

// Version is covseg's version, stamped into exported models and reports.
const Version = "0.1.0-dev"
