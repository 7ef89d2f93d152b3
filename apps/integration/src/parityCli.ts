console.log('parity: not implemented yet')
