"""daybreak's support code: config, source clients, the lake writer and run machinery."""
