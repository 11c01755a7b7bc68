import subprocess
import sys

from tests.conftest import ROOT


def test_the_forking_worker_parent_never_imports_torch():
    # CUDA initialised in the parent breaks every forked child ("Cannot re-initialize CUDA in
    # forked subprocess"); torch must be imported inside the task only.
    code = "import sys, worker.celery_app, worker.tasks, api.main; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_worker_settings_match_the_reliability_design():
    from persistence.settings import get_settings
    from worker.celery_app import app

    conf, settings = app.conf, get_settings()
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_max_tasks_per_child == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_default_queue == settings.queue


def test_a_new_pool_child_imports_torch_before_its_job_and_may_take_its_time():
    # worker_process_init runs in each forked child: the imports happen there, never in the parent
    code = (
        "import sys, worker.celery_app; from celery.signals import worker_process_init; "
        "before = 'torch' in sys.modules; worker_process_init.send(sender=None); "
        "print(before, 'torch' in sys.modules, 'core.methods.dec' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "True"]
    from worker.celery_app import app

    assert (
        app.conf.worker_proc_alive_timeout >= 60
    )  # Celery's 4 s default would kill a child mid-import
