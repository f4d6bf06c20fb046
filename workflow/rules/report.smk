# Claims report and executed notebooks.


rule claims:
    input:
        expand(
            f"{RESULTS}/{{experiment}}/aggregate.csv",
            experiment=list(config["experiments"]),
        ),
    output:
        report(f"{FIGURES}/claims.md", category="claims"),
    log:
        f"{LOGS}/claims.log",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/claims.py"


rule notebook:
    input:
        notebook=str(Path(workflow.basedir) / "notebooks" / "{notebook}.ipynb"),
        aggregates=expand(
            f"{RESULTS}/{{experiment}}/aggregate.csv",
            experiment=list(config["experiments"]),
        ),
        claims=f"{FIGURES}/claims.md",
        datasets=[f"{FIGURES}/datasets.md"] if requested_datasets() else [],
    output:
        f"{FIGURES}/notebooks/{{notebook}}.ipynb",
    log:
        f"{LOGS}/notebooks/{{notebook}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/notebooks/{{notebook}}.tsv"
    conda:
        "../../envs/notebook.yaml"
    script:
        "../scripts/execute_notebook.py"
