"""Applications built on the library: the benchmark, the demo training job, the State-of-the-Union corpus job,
peer implementations for the benchmark.

- `bench`: `tf-longformer bench`, speed, memory and FLOP efficiency against peers (its targets are data:
  `bench_targets.json`);
- `train_job`: `tf-longformer train`, a long-document classifier trained end to end on a table of documents;
- `sotu_job`: the State of the Union corpus, the default data of `tf-longformer train`;
- `peers`: scripts the benchmark runs in another Python environment (the reference TF Longformer).

They ship in the distribution for the command line (`tf_longformer.commands`), but nothing in the core library
imports them.
"""
