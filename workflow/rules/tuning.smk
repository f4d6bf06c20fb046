# The tuning stage (bilevel.experiments.tuning): one job per (experiment, method, grid cell, tuning seed),
# a selection per experiment, and the `tune` target that rebuilds every selection and compares it with the
# committed one (config/selections/). With `selections: committed` (the default config) the figure jobs
# read the committed files; with `selections: run` they wait for this stage's selections.


localrules:
    select,
    tune,


rule tune_job:
    input:
        datasets=lambda wc: experiment_datasets(wc.experiment),
        models=lambda wc: experiment_models(wc.experiment),
    output:
        csv=f"{RESULTS}/tuning/{{experiment}}/{{method}}/{{cell}}/seed{{seed}}.csv",
        provenance=f"{RESULTS}/tuning/{{experiment}}/{{method}}/{{cell}}/seed{{seed}}.provenance.json",
    log:
        f"{LOGS}/tuning/{{experiment}}/{{method}}/{{cell}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tuning/{{experiment}}/{{method}}/{{cell}}/seed{{seed}}.tsv"
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
        "../scripts/tune_job.py"


rule select:
    input:
        lambda wc: tuning_results(wc.experiment),
    output:
        f"{RESULTS}/tuning/{{experiment}}/selection.json",
    log:
        f"{LOGS}/tuning/{{experiment}}/select.log",
    conda:
        "../../envs/plot.yaml"
    params:
        section=lambda wc: config["experiments"][wc.experiment],
    script:
        "../scripts/select_parameters.py"


rule tune:
    input:
        [f"{RESULTS}/tuning/{e}/selection.json" for e in tuned_experiments()],
    output:
        f"{RESULTS}/tuning/check.md",
    log:
        f"{LOGS}/tuning/check.log",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/tune_check.py"
