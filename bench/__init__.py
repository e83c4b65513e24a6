"""kaalwatch's benchmarks: what users feel, as ratios and counts measured side by side in one run."""
