"""The HTTP service (``gpner serve``, the ``serve`` extra): the FastAPI app (``app``), the
micro-batcher that lets concurrent requests share forward passes (``microbatch``), and the HTML
pages that the service and ``gpner render`` draw (``pages``, ``web/``)."""
