"""ecgae.benchmarks"""
