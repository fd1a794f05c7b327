"""compare's rival gets its best BLAS kernels: a speedup against a rival running
generic code on this CPU would be a false figure."""
import pytest

from harness_common import compare

AVX512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}


@pytest.fixture
def no_coretype(monkeypatch):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    return monkeypatch


@pytest.mark.parametrize("flags, chosen", [(AVX512, "SkylakeX"), ({"avx2", "fma"}, "Haswell")])
def test_a_generic_fallback_is_replaced_by_the_best_family_the_cpu_has(no_coretype, flags, chosen):
    no_coretype.setattr(compare, "_faiss_blas_core", lambda: "Prescott")
    note = compare._choose_faiss_blas(flags)
    assert compare.os.environ["OPENBLAS_CORETYPE"] == chosen
    assert chosen in note and "Prescott" in note


def test_a_recognised_cpu_is_left_to_openblas(no_coretype):
    no_coretype.setattr(compare, "_faiss_blas_core", lambda: "Cooperlake")
    assert compare._choose_faiss_blas(AVX512) == "OpenBLAS Cooperlake kernels"
    assert "OPENBLAS_CORETYPE" not in compare.os.environ


def test_a_users_own_choice_wins(no_coretype):
    no_coretype.setenv("OPENBLAS_CORETYPE", "Haswell")
    no_coretype.setattr(compare, "_faiss_blas_core", lambda: pytest.fail("probed despite the user's choice"))
    assert "from OPENBLAS_CORETYPE" in compare._choose_faiss_blas(AVX512)
    assert compare.os.environ["OPENBLAS_CORETYPE"] == "Haswell"


def test_the_probe_names_faiss_openblas_kernels_where_faiss_is_installed():
    pytest.importorskip("faiss")
    assert compare._faiss_blas_core(), "the probe could not read FAISS's OpenBLAS core name"
