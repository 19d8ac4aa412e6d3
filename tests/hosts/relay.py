"""A TCP relay in front of the database host's PostgreSQL (tests/hosts):
`python relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS`.

The kernels of some machines lack netem (tc's delay); the relay then makes
the database link's delay: while on (SIGUSR1; SIGUSR2 turns it off), every
chunk PostgreSQL sends reaches its client DELAY_MS later, in order, as
netem would delay the database host's packets. Loss is the kernel's own
(nftables drops packets; TCP retransmits). Off, it only forwards."""
import asyncio
import signal
import sys
import time

DELAY = {'on': False, 'seconds': 0.0}


async def forward(reader, writer, delayed):
    queue = asyncio.Queue()

    async def read():
        try:
            while data := await reader.read(65536):
                await queue.put((time.monotonic(), data))
        except OSError:
            pass
        await queue.put((None, b''))

    async def write():
        try:
            while True:
                at, data = await queue.get()
                if at is None:
                    break
                if delayed and DELAY['on']:
                    wait = at + DELAY['seconds'] - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    await asyncio.gather(read(), write())


async def main(listen_host, listen_port, target_host, target_port, delay_ms):
    DELAY['seconds'] = delay_ms / 1000
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: DELAY.update(on=True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: DELAY.update(on=False))

    async def serve(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(forward(client_reader, server_writer, delayed=False),
                             forward(server_reader, client_writer, delayed=True))

    server = await asyncio.start_server(serve, listen_host, listen_port)
    print(f'relay {listen_host}:{listen_port} -> {target_host}:{target_port}', flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    host, port, target, target_port, delay = sys.argv[1:6]
    asyncio.run(main(host, int(port), target, int(target_port), float(delay)))
