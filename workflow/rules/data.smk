# Datasets: make them available (cache, seed directories, exact offline routes, network if allowed),
# record which files were used, and list them in figures/datasets.md. `snakemake download` fetches
# everything in data.download (the default config lists what config/paper.yaml needs).


# On a cluster these run on the submitting host: downloads need the network (compute nodes often have
# none) and the other two only read small files.
localrules:
    download,
    download_dataset,
    fetch_dataset,
    datasets_table,


rule fetch_dataset:
    output:
        f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{LOGS}/data/fetch/{{dataset}}.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        download=False,
        data=lambda wc: config["data"],  # a change of the data section re-runs the fetch
    script:
        "../scripts/fetch_dataset.py"


rule download_dataset:
    output:
        f"{RESULTS}/downloads/{{dataset}}.json",
    log:
        f"{LOGS}/data/download/{{dataset}}.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        download=True,
    script:
        "../scripts/fetch_dataset.py"


rule download:
    input:
        expand(
            f"{RESULTS}/downloads/{{dataset}}.json", dataset=config["data"]["download"]
        ),
    conda:
        "../../envs/cpu.yaml"


rule datasets_table:
    input:
        [f"{RESULTS}/data/{name}.json" for name in requested_datasets()],
    output:
        report(f"{FIGURES}/datasets.md", category="datasets"),
    log:
        f"{LOGS}/data/datasets_table.log",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/datasets_table.py"
