# Every experiment of the configuration (the shared baselines and the three papers): its method jobs, the
# classifier an attack needs, and the figure job (aggregate over seeds, summary tables, plot).


rule train_classifier:
    input:
        datasets=lambda wc: experiment_datasets(wc.experiment),
    output:
        f"{RESULTS}/models/{{experiment}}.json",
    log:
        f"{LOGS}/models/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_classifier/{{experiment}}.tsv"
    conda:
        "../../envs/cpu.yaml"
    threads: config["torch_threads"]
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        problem=lambda wc: config["experiments"][wc.experiment]["problem"],
    script:
        "../scripts/train_classifier.py"


# One job per (experiment, method label, seed list): `seeds_per_job` seeds run one after the other
# (default: all of them; config/paper.yaml: one per job), written to seed<S1>_<S2>...csv; its runtime
# limit is per seed. Environment and resources come from the experiment:
# GPU experiments (few-shot meta-learning) declare one GPU and use envs/gpu.yaml, running on the GPU when
# the machine has one and on the CPU otherwise (device "auto"); interrupted jobs of experiments with
# checkpoints resume from <output stem>.checkpoints/ when re-run.
rule run_job:
    input:
        datasets=lambda wc: experiment_datasets(wc.experiment),
        models=lambda wc: experiment_models(wc.experiment),
        selection=lambda wc: selection_input(wc.experiment),
    output:
        csv=f"{RESULTS}/{{experiment}}/{{method}}/seed{{seeds}}.csv",
        provenance=f"{RESULTS}/{{experiment}}/{{method}}/seed{{seeds}}.provenance.json",
    log:
        f"{LOGS}/run/{{experiment}}/{{method}}/seed{{seeds}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/run/{{experiment}}/{{method}}/seed{{seeds}}.tsv"
    conda:
        job_env
    threads: config["torch_threads"]
    resources:
        gpu=job_resource("gpu"),
        mem_mb=job_resource("mem_mb"),
        runtime=job_resource("runtime"),
    params:
        section=lambda wc: config["experiments"][wc.experiment],  # a config change re-runs the job
    script:
        "../scripts/run_job.py"


# An experiment's results -> its figure, in one job (one process start): the aggregate over seeds (mean
# and spread), the summary tables (final values per method, mean ± std) and the figure drawn from the
# aggregate.
rule plot:
    input:
        lambda wc: job_results(wc.experiment),
    output:
        csv=f"{RESULTS}/{{experiment}}/aggregate.csv",
        provenance=report(
            f"{RESULTS}/{{experiment}}/aggregate.provenance.json",
            category="provenance",
            caption="../report/provenance.rst",
        ),
        md=report(f"{FIGURES}/tables/{{experiment}}.summary.md", category="tables"),
        tex=f"{FIGURES}/tables/{{experiment}}.summary.tex",
        pdf=f"{FIGURES}/{{experiment}}.pdf",
        png=report(
            f"{FIGURES}/{{experiment}}.png",
            category="figures",
            caption="../report/figure.rst",
        ),
    log:
        f"{LOGS}/plot/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/{{experiment}}.tsv"
    conda:
        "../../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    params:
        section=lambda wc: config["experiments"][wc.experiment],
        # the report's caption (workflow/report/figure.rst)
        paper=lambda wc: get_experiment(wc.experiment).paper,
        title=lambda wc: get_experiment(wc.experiment).title,
        claims=lambda wc: [c.statement for c in get_experiment(wc.experiment).claims],
    script:
        "../scripts/plot.py"
