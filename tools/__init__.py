"""Developer tools: screenshots and the live stack the browser tests and benchmarks drive."""
