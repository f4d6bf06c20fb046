# Every experiment of the configuration (the shared baselines and the three papers): its method jobs, the
# classifier an attack needs, aggregate over seeds -> plot.


localrules:
    aggregate,  # concatenates the run CSVs: on a cluster, on the submitting host


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
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        problem=lambda wc: config["experiments"][wc.experiment]["problem"],
    script:
        "../scripts/train_classifier.py"


# One job per (experiment, method label, seed). Environment and resources come from the experiment:
# GPU experiments (few-shot meta-learning) declare one GPU and use envs/gpu.yaml, running on the GPU when
# the machine has one and on the CPU otherwise (device "auto"); interrupted jobs of experiments with
# checkpoints resume from <output stem>.checkpoints/ when re-run.
rule run_job:
    input:
        datasets=lambda wc: experiment_datasets(wc.experiment),
        models=lambda wc: experiment_models(wc.experiment),
        selection=lambda wc: selection_input(wc.experiment),
    output:
        csv=f"{RESULTS}/{{experiment}}/{{method}}/seed{{seed}}.csv",
        provenance=f"{RESULTS}/{{experiment}}/{{method}}/seed{{seed}}.provenance.json",
    log:
        f"{LOGS}/run/{{experiment}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/run/{{experiment}}/{{method}}/seed{{seed}}.tsv"
    conda:
        job_env
    threads: 1
    resources:
        gpu=job_resource("gpu"),
        mem_mb=job_resource("mem_mb"),
        runtime=job_resource("runtime"),
    params:
        section=lambda wc: config["experiments"][wc.experiment],  # a config change re-runs the job
    script:
        "../scripts/run_job.py"


# Bookkeeping over an experiment's per-seed results, in one job (one process start): the aggregate over
# seeds (mean and spread) and the summary tables (final values per method, mean ± std).
rule aggregate:
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
    log:
        f"{LOGS}/aggregate/{{experiment}}.log",
    conda:
        "../../envs/plot.yaml"
    params:
        section=lambda wc: config["experiments"][wc.experiment],
    script:
        "../scripts/aggregate.py"


rule plot:
    input:
        f"{RESULTS}/{{experiment}}/aggregate.csv",
    output:
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
