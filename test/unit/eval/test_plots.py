"""plots: step points of a link trace and one PNG per trace."""

from records_testlib import rec

from intradp_ros.eval.plots import plot_run, step_points


def test_step_points_and_plot_files(tmp_path):
    xs, ys = step_points([(0.0, 5.0), (2.0, 1.0), (9.0, 3.0)], t_end=4.0)
    assert xs == [0.0, 2.0, 2.0, 4.0] and ys == [5.0, 5.0, 1.0, 1.0]
    rows = [
        rec(s, 1.0 + i, 0.5, 2.0, trace=tr, frame=i, t=float(i))
        for tr in ("indoor", "outdoor")
        for s in ("intradp", "dsccs")
        for i in range(3)
    ]
    rows.append(rec("dsccs", 1.0, 0.5, 2.0, frame=3, t=3.0, error="x"))
    files = plot_run(rows, tmp_path, "run", links={("indoor", "intradp"): [(0.0, 5.0), (1.5, 2.0)]}, k=20.0)
    assert [f.name for f in files] == ["run_indoor.png", "run_outdoor.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000 for f in files)


def test_comparison_plot_writes_one_png_and_refuses_no_rows(tmp_path):
    import pytest

    from intradp_ros.eval.demo_report import comparison_rows
    from intradp_ros.eval.plots import plot_comparison
    from intradp_ros.eval.tables import summarize

    records = [
        rec(s, lat, 0.5, 2.0, trace="outdoor", frame=i)
        for s, lat in (("intradp", 1.0), ("device_only", 3.0))
        for i in range(2)
    ]
    records[0].update(predicted_s=1.2, floor_s=0.9)
    rows = comparison_rows(summarize(records), "outdoor", 20.0, ["intradp", "server_only", "device_only"])
    path = plot_comparison(rows, tmp_path / "sub" / "demo.png", "title")
    assert path == tmp_path / "sub" / "demo.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with pytest.raises(ValueError):
        plot_comparison([], tmp_path / "empty.png")


def test_plot_soak_writes_a_png_of_memory_threads_and_latency(tmp_path):
    from intradp_ros.eval.plots import plot_soak
    from intradp_ros.eval.soak_report import ProcSample

    samples = {
        "server": [ProcSample(100.0 + 5 * i, 900.0 + i, 26) for i in range(10)],
        "client_robot1": [ProcSample(101.0 + 5 * i, 650.0, 27) for i in range(10)],
    }
    path = plot_soak(samples, tmp_path / "soak.png", "soak", {"robot1": [(110.0, 0.3), (120.0, 0.4)]})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
