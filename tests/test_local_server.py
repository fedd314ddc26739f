"""synth.local_server without a real server: the crash message and the no_repack launcher.

Issue 27, item 6: llama-cpp-python's server died with SIGILL on some CPUs (an invalid opcode
in llama.cpp's CPU weight-repack code) until repacking was turned off. The crash is simulated
by a command that kills itself with SIGILL; the launcher test needs llama_cpp importable.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys

import pytest

from synth.local_server import (
    NO_REPACK_LAUNCHER,
    LlamaCppServer,
    ServerCrashedError,
    crash_message,
    illegal_instruction,
    server_command,
)

SIGILL_SELF = ("import os, signal; print('load_tensors: loading model tensors', flush=True); "
               "os.kill(os.getpid(), signal.SIGILL)")


def test_sigill_at_startup_names_the_repack_code_and_the_remedy(tmp_path):
    with pytest.raises(ServerCrashedError) as ei:
        LlamaCppServer("unused.gguf", alias="m", log_path=tmp_path / "server.log",
                       start_timeout_s=30, command=[sys.executable, "-c", SIGILL_SELF])
    err = ei.value
    assert err.returncode == -signal.SIGILL
    msg = str(err)
    assert "SIGILL" in msg and "Illegal instruction" in msg
    assert "repack" in msg and "no_repack=True" in msg and "--no-repack" in msg
    assert "use_extra_bufts = False" in msg
    assert "loading model tensors" in msg  # the log's tail is kept
    assert isinstance(err, RuntimeError)  # callers catching RuntimeError still do


def test_sigill_with_repack_already_off_points_at_the_build(tmp_path):
    with pytest.raises(ServerCrashedError) as ei:
        LlamaCppServer("unused.gguf", alias="m", log_path=tmp_path / "server.log",
                       start_timeout_s=30, no_repack=True,
                       command=[sys.executable, "-c", SIGILL_SELF])
    msg = str(ei.value)
    assert "repacking was off" in msg and "rebuild" in msg


def test_illegal_instruction_in_the_log_of_a_shell_wrapper():
    # a shell in between reports 128 + 4 and prints the kernel's words
    assert illegal_instruction(132, "")
    assert illegal_instruction(1, "bash: line 1:  42 Illegal instruction (core dumped)")
    assert "no_repack=True" in crash_message(132, "Illegal instruction")


def test_other_exits_get_no_repack_hint(tmp_path):
    assert not illegal_instruction(1, "ValueError: Model path does not exist")
    assert "repack" not in crash_message(1, "ValueError: Model path does not exist")
    with pytest.raises(ServerCrashedError) as ei:
        LlamaCppServer("unused.gguf", alias="m", log_path=tmp_path / "server.log",
                       start_timeout_s=30,
                       command=[sys.executable, "-c", "import sys; sys.exit('no model')"])
    assert ei.value.returncode == 1 and "repack" not in str(ei.value)
    assert "no model" in str(ei.value)


def test_server_command_with_and_without_repack():
    plain = server_command("m.gguf", alias="a", port=8080, n_ctx=512, threads=2)
    assert plain[1:3] == ["-m", "llama_cpp.server"]
    off = server_command("m.gguf", alias="a", port=8080, n_ctx=512, threads=2,
                         extra_args=("--verbose", "false"), no_repack=True)
    assert off[1:3] == ["-c", NO_REPACK_LAUNCHER]
    assert off[3:] == plain[3:] + ["--verbose", "false"]  # the server gets the same arguments


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="needs llama-cpp-python (pip install 'datamill[synth-server]')")
def test_launcher_turns_use_extra_bufts_off():
    run_line = 'runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)'
    assert run_line in NO_REPACK_LAUNCHER
    probe = NO_REPACK_LAUNCHER.replace(run_line, "print(_default().use_extra_bufts, "
                                       "_c.llama_model_default_params().use_extra_bufts)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]  # llama.cpp's default, then the launcher's
