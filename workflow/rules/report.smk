# Claims report and executed notebooks.


# Seconds of bookkeeping on small files: on a cluster they run on the submitting host, not as jobs.
localrules:
    claims,
    table,
    runtimes,


rule claims:
    input:
        aggregates=expand(
            f"{RESULTS}/{{experiment}}/aggregate.csv",
            experiment=list(config["experiments"]),
        ),
        results=[job_results(e) for e in config["experiments"]],
        selections=[selection_input(e) for e in config["experiments"]],
    output:
        report(f"{FIGURES}/claims.md", category="claims"),
    log:
        f"{LOGS}/claims.log",
    conda:
        "../../envs/plot.yaml"
    params:
        results={e: job_results(e) for e in config["experiments"]},
        selections={e: (selection_input(e) or [None])[0] for e in config["experiments"]},
    script:
        "../scripts/claims.py"


rule notebook:
    input:
        notebook=str(Path(workflow.basedir) / "notebooks" / "{notebook}.ipynb"),
        aggregates=expand(
            f"{RESULTS}/{{experiment}}/aggregate.csv",
            experiment=list(config["experiments"]),
        ),
        figures=expand(
            f"{FIGURES}/{{experiment}}.png", experiment=list(config["experiments"])
        ),
        claims=f"{FIGURES}/claims.md",
        datasets=[f"{FIGURES}/datasets.md"] if requested_datasets() else [],
        tables=expand(f"{FIGURES}/tables/{{table}}.md", table=config["tables"]),
        summaries=[t for t in summary_tables() if t.endswith(".md")],
    output:
        f"{FIGURES}/notebooks/{{notebook}}.ipynb",
    log:
        f"{LOGS}/notebooks/{{notebook}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/notebooks/{{notebook}}.tsv"
    conda:
        "../../envs/notebook.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/execute_notebook.py"


rule table:
    output:
        md=report(f"{FIGURES}/tables/{{table}}.md", category="tables"),
        tex=f"{FIGURES}/tables/{{table}}.tex",
    log:
        f"{LOGS}/tables/{{table}}.log",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/table.py"


rule runtimes:
    input:
        [t for t in all_targets(with_runtimes=False)],
    output:
        report(f"{FIGURES}/runtimes.md", category="runtimes"),
    log:
        f"{LOGS}/runtimes.log",
    conda:
        "../../envs/plot.yaml"
    params:
        benchmarks=f"{RESULTS}/benchmarks",
    script:
        "../scripts/runtimes.py"
